#ifndef CLINICMESH_CLZ4_SHIM_H
#define CLINICMESH_CLZ4_SHIM_H
#include <lz4.h>
#endif
