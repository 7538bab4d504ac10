"""PyTorch's matmul on the same GPU, the peer of bench/kernels.ts's GPU matmul figures.

Usage: python3 bench/torch_matmul.py SIZE [SIZE ...]
Prints one JSON object: TFLOP/s of torch.mm at SIZE^3 for float32 (TF32 off: cuBLAS SGEMM),
float32 with TF32, float16 and bfloat16 (float32 accumulation, cuBLAS's default), and
torch._scaled_mm on float8 e4m3 where the GPU has it; each the best of 10 timed runs of 10
products after 3 warm-up products, timed with CUDA events. Exit 2 (and a JSON reason) without CUDA.
"""
import json
import sys

try:
    import torch
except ImportError as e:  # no PyTorch here
    print(json.dumps({"skipped": f"no torch: {e}"}))
    sys.exit(2)

if not torch.cuda.is_available():
    print(json.dumps({"skipped": "torch has no CUDA device"}))
    sys.exit(2)


def tflops(fn, flops, inner=10, reps=10):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / inner)
    return round(flops / (best / 1000) / 1e12, 2)


def main(sizes):
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "unit": "TFLOP/s", "sizes": {}}
    for s in sizes:
        flops = 2 * s ** 3
        row = {}
        g = torch.Generator(device="cuda").manual_seed(0)
        a = torch.randn(s, s, device="cuda", generator=g)
        b = torch.randn(s, s, device="cuda", generator=g)
        torch.backends.cuda.matmul.allow_tf32 = False
        row["float32"] = tflops(lambda: torch.mm(a, b), flops)
        torch.backends.cuda.matmul.allow_tf32 = True
        row["float32_tf32"] = tflops(lambda: torch.mm(a, b), flops)
        torch.backends.cuda.matmul.allow_tf32 = False
        for name, dt in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
            x, y = a.to(dt), b.to(dt)
            row[name] = tflops(lambda: torch.mm(x, y), flops)
        if hasattr(torch, "float8_e4m3fn") and hasattr(torch, "_scaled_mm"):
            try:
                x = a.to(torch.float8_e4m3fn)
                y = b.t().contiguous().to(torch.float8_e4m3fn).t()  # column-major B, as cuBLASLt wants
                one = torch.tensor(1.0, device="cuda")
                row["float8_e4m3fn_scaled_mm"] = tflops(lambda: torch._scaled_mm(x, y, scale_a=one, scale_b=one, out_dtype=torch.bfloat16), flops)
            except Exception as e:  # an older GPU or torch
                row["float8_e4m3fn_scaled_mm"] = f"skipped: {str(e).splitlines()[0][:200]}"
        out["sizes"][str(s)] = row
    print(json.dumps(out))


if __name__ == "__main__":
    main([int(x) for x in sys.argv[1:]] or [4096])
