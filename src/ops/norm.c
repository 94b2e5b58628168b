/* norm.c — (to be filled) */
#include "ops.h"

const gr_opdef gr_ops_norm[] = {
    {0},
};
