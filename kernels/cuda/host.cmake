# kernels/cuda/host.cmake: the fused CUDA kernel's host-side C (the plan of a shape, the tuning
# knobs) as library moefuzz_cuda_host. Plain C, so it builds without CUDA: the kernel's builds
# (kernels/cuda, CUDA on) and the CPU emulator's (tests/gpu/emu, every build) both include this
# file, and the first one defines the target.
include_guard(GLOBAL)
add_library(moefuzz_cuda_host STATIC ${CMAKE_CURRENT_LIST_DIR}/moe_plan.c
                                     ${CMAKE_CURRENT_LIST_DIR}/moe_knobs.c)
target_include_directories(moefuzz_cuda_host PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(moefuzz_cuda_host PUBLIC moefuzz_kernel_abi m)
set_target_properties(moefuzz_cuda_host PROPERTIES POSITION_INDEPENDENT_CODE ON)
