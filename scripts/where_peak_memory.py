"""Where a CPU training run's peak resident memory comes from: the measurements behind `backprop plan`'s CPU terms.

    python scripts/where_peak_memory.py stage output/<run_id>/spec.json     # a real train stage, phase by phase
    python scripts/where_peak_memory.py layers models/smollm2-135m-instruct --tokens 512 [--lora-dropout 0]

`stage` runs the train stage of an earlier `backprop train` run again, in this process, from its spec (it
trains into the same run folder), sampling the resident set every fraction of a millisecond. It prints, for
each phase of each micro-batch (the forward of every decoder layer, the loss, the backward of the loss and
of every layer, the optimizer), the largest RSS seen in it and glibc's figures there (mallinfo2: the heap's
size, the bytes in use, the free bytes it keeps, the blocks mapped on their own).

`layers` builds four decoder layers of the model's shape (random weights) with LoRA rank 16 on every linear
layer and records the addresses of every allocation of their forward pass (torch.profiler's memory
events). Per layer it prints how far the top of the heap grew, against the bytes that layer keeps for
backward: the difference is the freed memory the heap keeps below its top.
"""

import argparse
import ctypes
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path


class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


def heap() -> dict:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Mallinfo2
    info = libc.mallinfo2()
    return {"heap": info.arena, "in_use": info.uordblks, "free_kept": info.fordblks, "mapped": info.hblkhd}


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def stage(spec: Path) -> int:
    """Run the train stage with a sampler thread and phase labels; print the peak of each phase."""
    import torch
    from backpropagate_stages.harness import stage_main
    from backpropagate_stages.train import loop, model, run

    phase, peaks, at = ["start"], {}, {}

    def sample() -> None:
        while True:
            now, name = rss(), phase[0]
            if now > peaks.get(name, 0) + (1 << 20) or name not in peaks:
                at[name] = heap()  # only on a new high of the phase: mallinfo2 walks the heap
            peaks[name] = max(peaks.get(name, 0), now)
            time.sleep(0.0003)

    micro = [0]
    token_losses, backward, step, load = loop.token_losses, torch.Tensor.backward, torch.optim.AdamW.step, \
        model.load_lora_model

    def labelled_losses(*args, **kwargs):
        micro[0] += 1
        phase[0] = f"{micro[0]} forward"
        return token_losses(*args, **kwargs)

    def labelled_backward(self, *args, **kwargs):
        phase[0] = f"{micro[0]} backward"
        backward(self, *args, **kwargs)

    def labelled_step(self, *args, **kwargs):
        phase[0] = f"{micro[0]} optimizer"
        return step(self, *args, **kwargs)

    def labelled_load(*args, **kwargs):
        phase[0] = "load"
        wrapped = load(*args, **kwargs)
        base = wrapped.get_base_model()

        def enter(name):
            def hook(*_):
                phase[0] = f"{micro[0]} {name}"
            return hook
        for i, layer in enumerate(base.model.layers):
            layer.register_forward_pre_hook(enter(f"forward layer {i}"))
            layer.register_full_backward_pre_hook(enter(f"backward layer {i}"))
        base.get_output_embeddings().register_forward_pre_hook(
            lambda *_: phase.__setitem__(0, f"{micro[0]} loss {'backward' if 'backward' in phase[0] else 'forward'}"))
        return wrapped

    loop.token_losses, torch.Tensor.backward, torch.optim.AdamW.step = labelled_losses, labelled_backward, labelled_step
    model.load_lora_model = labelled_load
    threading.Thread(target=sample, daemon=True).start()
    code = stage_main("train", run.run, ["--spec", str(spec)])
    mib = 2**20
    print(f"{'phase':28} {'RSS MiB':>8} {'heap':>7} {'in use':>7} {'free kept':>9} {'mapped':>7}", file=sys.stderr)
    for name, peak in peaks.items():
        figures = at.get(name, {})
        print(f"{name:28} {peak / mib:8.0f} " + " ".join(f"{figures.get(k, 0) / mib:{w}.0f}" for k, w in
              (("heap", 7), ("in_use", 7), ("free_kept", 9), ("mapped", 7))), file=sys.stderr)
    top = max(peaks, key=peaks.get)
    print(f"peak {peaks[top] / mib:.0f} MiB in {top}", file=sys.stderr)
    return code


def layers(model: Path, tokens: int, dropout: float) -> int:
    """The heap's growth per decoder layer in one forward pass, against the bytes the layer keeps."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.profiler import ProfilerActivity, profile, record_function
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model)
    config.num_hidden_layers = 4
    lora = get_peft_model(AutoModelForCausalLM.from_config(config), LoraConfig(
        r=16, lora_alpha=32, lora_dropout=dropout, target_modules="all-linear"))
    lora.train()
    decoder = lora.get_base_model().model
    spans = {}
    for i, layer in enumerate(decoder.layers):
        layer.register_forward_pre_hook(lambda *_, i=i: spans.__setitem__(i, record_function(f"layer {i}").__enter__()))
        layer.register_forward_hook(lambda *_, i=i: spans[i].__exit__(None, None, None))
    rows = 2
    ids = torch.randint(0, config.vocab_size, (rows, tokens // rows))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        decoder(input_ids=ids, position_ids=torch.arange(tokens // rows).repeat(rows, 1), use_cache=False)
    trace = Path(f"/tmp/where_peak_memory_{os.getpid()}.json")
    prof.export_chrome_trace(str(trace))
    events = json.loads(trace.read_text())["traceEvents"]
    trace.unlink()
    windows = {int(e["name"].split()[1]): (e["ts"], e["ts"] + e["dur"]) for e in events
               if e.get("name", "").startswith("layer ") and "dur" in e}
    memory = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    large = [e["args"] for e in memory if e["args"]["Bytes"] >= 64 * 1024]
    middle = statistics.median(a["Addr"] for a in large)  # the heap; blocks mapped alone lie far from it
    previous = None
    for i, (start, end) in sorted(windows.items()):
        inside = [e["args"] for e in memory if start <= e["ts"] <= end]
        kept = sum(a["Bytes"] for a in inside)  # allocated less freed within the layer
        top = max(a["Addr"] + a["Bytes"] for a in inside if a["Bytes"] > 0 and abs(a["Addr"] - middle) < 2**31)
        if previous is not None:
            grew = top - previous
            print(f"layer {i}: heap top +{grew / tokens:,.0f} bytes a token, kept for backward {kept / tokens:,.0f}, "
                  f"freed but resident {(grew - kept) / tokens:,.0f}")
        previous = top
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    run = sub.add_parser("stage", help="a real train stage, phase by phase")
    run.add_argument("spec", type=Path)
    layer = sub.add_parser("layers", help="the heap's growth per decoder layer")
    layer.add_argument("model", type=Path)
    layer.add_argument("--tokens", type=int, default=512)
    layer.add_argument("--lora-dropout", type=float, default=0.05)
    args = parser.parse_args(argv)
    if args.what == "stage":
        return stage(args.spec)
    return layers(args.model, args.tokens, args.lora_dropout)


if __name__ == "__main__":
    sys.exit(main())
