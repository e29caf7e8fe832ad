{
  "targets": [
    {
      "target_name": "fedtune_native",
      "sources": ["src/addon.cc", "src/gemm_generic.cc", "src/gemm_avx2.cc", "src/gemm_avx512.cc", "src/fedavg_generic.cc", "src/fedavg_avx2.cc", "src/attention.cc", "src/rowwise.cc", "src/dequant.cc"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions"],
      "cflags_cc!": ["-fno-rtti"],
      "xcode_settings": {
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17"]
      }
    }
  ]
}
