/* A program outside the tree that uses an installed libdmce. */
#include <dmce/dmce.h>
#include <stdio.h>

int main(void)
{
    dmce_addr_t a;
    if (dmce_addr_encode(DMCE_LAYOUT_12_12_40, 0, 1, 64, &a) != 0)
        return 1;
    char txt[DMCE_ADDR_STRLEN];
    dmce_addr_format(DMCE_LAYOUT_12_12_40, a, txt, sizeof(txt));
    printf("%s %s\n", txt, dmce_strerror(DMCE_EBADADDR));
    return 0;
}
