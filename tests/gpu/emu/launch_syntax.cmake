# launch_syntax.cmake: copies a CUDA source with its kernel launches rewritten for the CPU
# emulator: `k<<<grid, block, smem, stream>>>(args)` becomes `emu_launch(k, grid, block, smem,
# stream)(args)`. Fails when a launch is left unconverted (e.g. split over lines).
#   cmake -DIN=moe_cuda.cu -DOUT=moe_cuda_emu.cpp -P launch_syntax.cmake
file(READ "${IN}" src)
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_>-]*)<<<([^\n]*)>>>" "emu_launch(\\1, \\2)" out
       "${src}")
if(out MATCHES "<<<|>>>")
  message(FATAL_ERROR "${IN}: a kernel launch could not be rewritten for the emulator")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${out}")
file(RENAME "${OUT}.tmp" "${OUT}")
