// NAS_VECTOR_CLONES marks a function whose loops GCC should compile twice:
// for x86-64 with AVX2 and FMA (x86-64-v3) and for the baseline. The loader
// picks the best the CPU has (function multi-versioning), so one binary runs
// everywhere and still uses 8-wide vectors where it can. Other compilers and
// architectures get the baseline only, and so do sanitizer builds: the
// loader runs the clones' resolvers before a sanitizer's runtime is set up,
// and ThreadSanitizer's instrumentation of them crashes the binary at start.
#ifndef NAS_COMMON_VECTOR_CLONES_H_
#define NAS_COMMON_VECTOR_CLONES_H_

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#define NAS_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define NAS_VECTOR_CLONES
#endif

#endif  // NAS_COMMON_VECTOR_CLONES_H_
