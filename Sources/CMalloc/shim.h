#ifndef CLINICMESH_CMALLOC_SHIM_H
#define CLINICMESH_CMALLOC_SHIM_H
// glibc's malloc_trim, which Swift's Glibc module leaves out.
#include <malloc.h>
#endif
