/*
 * cuda_emu_sink.h — how the emulator (cuda_emu.h) reports a launch's global
 * accesses to its caller once the grid has run: for every checked buffer,
 * runs of consecutive elements with one access mode (bit 0 read, bit 1
 * written). The fake GPU (tests/cuda/fake_gpu.cc) turns them into device
 * addresses for its record of which stream touched what. Plain C layout:
 * both the generated module and the fake include it.
 */
#ifndef RXC_CUDA_EMU_SINK_H
#define RXC_CUDA_EMU_SINK_H

struct RxcEmuSink {
    void (*touched)(void *ctx, int arg, long long first, long long count, int mode);
    void *ctx;
};

#endif
