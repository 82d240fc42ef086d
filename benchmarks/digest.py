"""Behaviour digest for refactors: a hash of every claim's dataset at quick scale and of the
public samplers' and kernels' outputs at fixed keys.

    python benchmarks/digest.py before.json            # on the old tree
    python benchmarks/digest.py after.json             # on the new tree
    python benchmarks/digest.py --compare before.json after.json

Only data variables and coordinates are hashed (attributes hold timings and versions), and
of those not the wall-clock timings some studies record (``seconds``, ``fit_seconds``).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys

import numpy as np


def _hash_arrays(arrays) -> str:
    h = hashlib.sha256()
    for name, a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(name.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
    return h.hexdigest()[:16]


def _hash_dataset(ds) -> str:
    items = [(f"v:{k}", ds[k].values) for k in sorted(ds.data_vars) if "seconds" not in k]
    items += [(f"c:{k}", ds[k].values) for k in sorted(ds.coords)]
    return _hash_arrays(items)


def public_outputs() -> dict[str, str]:
    import jax

    import deeplimits as dl

    out = {}
    x = np.linspace(-1, 1, 8).reshape(2, 4) + 1.0
    for form, act in (("A", "relu"), ("B", "tanh"), ("C", "relu")):
        net = dl.ResNet(form=form, activation=act, width=4, depth=64, sigma_b=0.3)
        for sampler in ("dense", "exact", "sde"):
            if sampler == "exact" and form == "C":
                continue
            X = dl.sample(net, x, key=jax.random.key(0), samples=64, sampler=sampler)
            out[f"sample/{form}/{sampler}"] = _hash_arrays([("x", X)])
        Y = dl.sample_sde(net, x, key=jax.random.key(1), samples=32, steps=64)
        out[f"sample_sde/{form}"] = _hash_arrays([("y", Y)])
    for form, act in (("A", "tanh"), ("B", "swish")):
        net = dl.ResNet(form=form, activation=act, width=4, depth=32, sigma_b=0.3)
        for method in ("exact", "autodiff", "sde"):
            g = dl.backward.sample_gradients(net, x, jax.random.key(3), samples=16, method=method)
            out[f"gradients/{form}/{method}"] = _hash_arrays(sorted(g.items()))
    images = np.linspace(-1, 1, 2 * 6 * 6).reshape(2, 1, 6, 6)
    for form, act in (("A", "tanh"), ("B", "swish")):
        net = dl.conv.ConvResNet(channels=3, depth=16, image_shape=(6, 6), form=form,
                            activation=act, sigma_b=0.2)
        for sampler in ("dense", "exact", "sde"):
            X = dl.conv.sample_conv(net, images, jax.random.key(4), samples=8,
                                    sampler=sampler)
            out[f"conv/{form}/{sampler}"] = _hash_arrays([("x", X)])
    net = dl.ResNet(form="A", activation="relu", width=4, depth=32)
    out["solve_sde"] = _hash_arrays([("y", dl.solve_sde(net, x, jax.random.key(2), steps=32))])
    z = np.random.default_rng(0).standard_normal((6, 3))
    for form in ("A", "B", "C"):
        for act in ("relu", "erf", "tanh"):
            if form == "B" and act == "relu":
                continue
            net = dl.ResNet(form=form, activation=act, width=1, depth=20, sigma_b=0.4,
                            input_layer=dl.InputLayer(dim=3))
            for depth in (20, math.inf):
                kw = {"steps": 16} if depth == math.inf else {}
                k = dl.kernel(net, z, depth=depth, **kw)
                out[f"kernel/{form}/{act}/{depth}"] = _hash_arrays([("k", k.nngp), ("t", k.ntk)])
    return out


def claim_outputs() -> dict[str, str]:
    try:
        from deeplimits.experiments.claims import registry
    except ImportError:  # before the layered layout
        from deeplimits.claims import registry
    out = {}
    for cid, claim in registry().items():
        print(cid, file=sys.stderr, flush=True)
        result = claim.run("quick", 0)
        out[f"claim/{cid}"] = _hash_dataset(result.dataset)
    return out


def main(argv):
    if argv[0] == "--compare":
        a, b = (json.load(open(p)) for p in argv[1:3])
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        print(f"{len(a)} entries, {len(diff)} differ")
        for k in diff:
            print(f"  {k}: {a.get(k)} -> {b.get(k)}")
        return 1 if diff else 0
    digest = public_outputs()
    if "--no-claims" not in argv:
        digest.update(claim_outputs())
    json.dump(digest, open(argv[0], "w"), indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
