/* Prints the CPU features MLAS's platform.cpp dispatches on, as this process sees them. */
#include <cpuid.h>
#include <stdio.h>
#include <stdint.h>
int main(void) {
  unsigned a, b, c, d, a1 = 0, b1 = 0, c1 = 0, d1 = 0, ecx1, x;
  __cpuid(1, x, x, ecx1, x);
  __cpuid_count(7, 0, a, b, c, d);
  __cpuid_count(7, 1, a1, b1, c1, d1);
  uint32_t lo = 0, hi = 0;
  if (ecx1 & (1u << 27)) __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  printf("avx2=%d fma=%d avx512f=%d avx512bw/dq/vl=%d avx512_vnni=%d avx_vnni=%d avx_vnni_int8=%d amx=%d xcr0=0x%x\n",
         !!(b & 0x20), !!(ecx1 & 0x1000), !!(b & 0x10000), (b & 0xC0020000) == 0xC0020000,
         !!(c & 0x800), !!(a1 & 0x10), !!(d1 & 0x10), !!(d & (1u << 24)), lo);
  return 0;
}
