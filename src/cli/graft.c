/* graft.c — the command line (placeholder until the CLI lands). */
#include "graft.h"
#include <stdio.h>
int main(void) { printf("graft %s\n", graft_version()); return 0; }
