"""``sparta eval``: accuracy of a checkpoint or run folder."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy of a checkpoint or run folder")
    p.add_argument("--ckpt", required=True, help="run folder or .safetensors file")
    p.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--subset", type=int, default=0, help="evaluate on this many samples only")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs")
    p.add_argument("--name")
    p.set_defaults(func=run)


def load_for_eval(ckpt: str, dataset: str | None, split: str, device: str = "cpu"):
    """The model of ``ckpt`` and a dataset whose inputs fit it (default: its own dataset)."""
    import sparta
    from sparta import data as sdata

    model = sparta.load(ckpt, device=device)
    spec = model.sparta_spec
    name = dataset or spec["dataset"]["name"]
    data = sdata.load(name, split)
    want = tuple(spec["dataset"]["input_shape"])
    if tuple(data.input_shape) != want or data.num_classes != spec["dataset"]["num_classes"]:
        raise ValueError(
            f"checkpoint was trained on {spec['dataset']['name']} (inputs {want}, "
            f"{spec['dataset']['num_classes']} classes); dataset {name} has "
            f"{tuple(data.input_shape)} and {data.num_classes} classes"
        )
    return model, data


def run(args: argparse.Namespace) -> int:
    from sparta.runs import Run
    from sparta.train import evaluate

    model, dataset = load_for_eval(args.ckpt, args.dataset, args.split, args.device)
    if args.subset:
        dataset = dataset.take(min(args.subset, len(dataset)))
    res = evaluate(model, dataset, args.batch_size)
    config = {
        "ckpt": str(model.sparta_checkpoint["path"]),
        "dataset": dataset.name,
        "split": args.split,
        "subset": args.subset,
    }
    run = Run.create(config, "eval", root=args.out, name=args.name, overwrite=True)
    summary = {f"{args.split}_acc": res["acc"], f"{args.split}_loss": res["loss"], "n": res["n"]}
    run.write_summary(summary)
    print(f"{args.split}_acc={res['acc']:.4f} loss={res['loss']:.4f} n={res['n']} ({dataset.name})")
    print(f"run: {run.path}")
    return 0
