#!/usr/bin/env python3
"""Loads the GPU from a second process, as another workload on the robot would: bf16 matrix products.

--duty D: for D of every period the process runs products of --size, synchronizing after each one (launches are
asynchronous, so without that the queue keeps the GPU busy all the time); the rest of the period it sleeps. A
moderate, steady slowdown of a model sharing the GPU. --naive: products back to back, the extreme case.

Usage: gpu-load.py [--duty 0.3] [--period-ms 20] [--size 4096] [--naive]
"""
import argparse
import time

import torch

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--duty", type=float, default=0.3)
parser.add_argument("--period-ms", type=float, default=20.0)
parser.add_argument("--size", type=int, default=4096)
parser.add_argument("--naive", action="store_true")
args = parser.parse_args()
a = torch.randn(args.size, args.size, dtype=torch.bfloat16, device="cuda")
b = torch.randn(args.size, args.size, dtype=torch.bfloat16, device="cuda")
period = args.period_ms / 1000
while True:
    if args.naive:
        for _ in range(64):
            a @ b
        torch.cuda.synchronize()
        continue
    begun = time.monotonic()
    while time.monotonic() - begun < args.duty * period:
        a @ b
        torch.cuda.synchronize()
    time.sleep(max(0.0, period - (time.monotonic() - begun)))
