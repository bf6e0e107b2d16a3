// The build's sm_90a rule (csrc/cuda/CMakeLists.txt) made checkable before the
// first Hopper-specific kernel exists: this file is compiled for sm_90a and
// nothing else, or the build fails here. It holds no code; the first *_sm90a.cu
// kernel file (wgmma, TMA) makes it redundant and removes it.
#if defined(__CUDA_ARCH__) && !(__CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL))
#error "an _sm90a.cu file must be compiled for sm_90a only"
#endif
