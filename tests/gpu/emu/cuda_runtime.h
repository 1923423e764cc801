/* cuda_runtime.h: stands in for the CUDA runtime header when the kernel is built for the CPU
 * emulator (this directory comes first on the emulator's include path). */
#include "cuda_emu.h"
