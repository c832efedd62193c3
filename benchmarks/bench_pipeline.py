"""Engine epoch time against two baselines, measured in the same run.

1. Pure compute: forward+backward+step over batches made in advance (same model, batch,
   channels_last): the limit no input pipeline can beat. Target: engine <= 1.10x of it.
2. A standard torchvision pipeline: in-memory CIFAR10-style dataset, RandomCrop(32, 4),
   RandomHorizontalFlip, ToTensor, Normalize, DataLoader(num_workers=2). Target: the engine
   is faster (ratio < 1).

Run: python benchmarks/bench_pipeline.py [--images 8000] [--model small_cnn] [--data-path X]
On a GPU, pass --model resnet18 --images 50000 --device cuda for the ResNet-18 epoch figures.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from beta_core.config import resolve_config
from beta_core.data import DataConfig, load_splits, make_synthetic
from beta_core.engine import Training, pick_device
from beta_core.records import EPOCH, STEP


def engine_epoch(cfg, splits) -> float:
    t = Training(cfg, splits=splits)
    t.setup()
    recs = list(t.run())
    ep = [r for r in recs if r["kind"] == EPOCH]
    steps = [r for r in recs if r["kind"] == STEP]
    # Training time of the last epoch without its evaluation pass.
    return steps[-1]["time"] - (ep[-2]["time"] if len(ep) > 1 else 0.0)


def timed_second_pass(t: Training, batches) -> float:
    """SGD over ``batches()`` twice (the first warms up, as the engine's first epoch does);
    returns the seconds of the second pass."""
    model, device = t.model, t.device
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    mf = torch.channels_last if t.channels_last else torch.contiguous_format
    for _ in range(2):
        model.train()
        t0 = time.perf_counter()
        for x, y in batches():
            x = x.to(device, non_blocking=True).contiguous(memory_format=mf)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, torch.bfloat16, enabled=t.autocast):
                out = model(x)
            loss = F.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        loss.item()
    return time.perf_counter() - t0


def compute_epoch(cfg, splits) -> float:
    t = Training(cfg, splits=splits)
    t.setup()
    made = [(x.clone(), y.clone()) for x, y in t.train_loader.epoch(0)]  # made in advance
    return timed_second_pass(t, lambda: made)


def dataloader_epoch(cfg, splits, device) -> float:
    import torchvision.transforms as T
    from torch.utils.data import DataLoader, Dataset

    mean, std = splits.mean_std
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])

    class InMemory(Dataset):  # what torchvision.datasets.CIFAR10 does: HWC uint8 numpy -> PIL
        def __init__(self, x, y):
            self.x, self.y = x.permute(0, 2, 3, 1).numpy(), y.tolist()

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            from PIL import Image

            return tf(Image.fromarray(self.x[i])), self.y[i]

    loader = DataLoader(InMemory(splits.train_x, splits.train_y), batch_size=cfg.batch_size, shuffle=True,
                        num_workers=2, pin_memory=device.type == "cuda", persistent_workers=True)
    t = Training(cfg, splits=splits)
    t.setup()
    return timed_second_pass(t, lambda: loader)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8000)
    ap.add_argument("--model", default="small_cnn")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-path", default=None, help="ImageFolder/.tar.gz; synthetic images if absent")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if args.data_path:
        splits = load_splits(DataConfig("folder", args.data_path, train_subset=args.images, test_subset=1000))
    else:
        splits = make_synthetic(args.images, 1000)
    cfg = resolve_config("sgd-beta", model=args.model, batch_size=args.batch, epochs=2, device=args.device,
                         dataset="synthetic")
    dev = pick_device(args.device)
    print(f"device {dev}, model {args.model}, {len(splits.train_y)} images, batch {args.batch}, "
          f"threads {torch.get_num_threads()}")
    eng, comp, dl = [], [], []
    for _ in range(args.repeats):  # interleaved, so machine-load drift hits all three
        eng.append(engine_epoch(cfg, splits))
        comp.append(compute_epoch(cfg, splits))
        dl.append(dataloader_epoch(cfg, splits, dev))
    e, c, d = min(eng), min(comp), min(dl)
    n = len(splits.train_y)
    print(f"engine epoch             : {e:7.2f} s  ({n / e:7.0f} img/s)")
    print(f"pure compute (limit)     : {c:7.2f} s  ({n / c:7.0f} img/s)")
    print(f"torchvision DataLoader   : {d:7.2f} s  ({n / d:7.0f} img/s)")
    print(f"engine / pure compute    : {e / c:7.3f}   target <= 1.10 -> {'MET' if e / c <= 1.10 else 'NOT MET'}")
    print(f"engine / DataLoader      : {e / d:7.3f}   target < 1 -> {'MET' if e < d else 'NOT MET'} "
          f"(DataLoader / engine = {d / e:.2f}x)")


if __name__ == "__main__":
    main()
