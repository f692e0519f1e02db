"""``python -m depth_kd_core.models``: list registered models with parameter counts."""

from __future__ import annotations

import argparse

from depth_kd_core.models.registry import create_model, list_models, model_cfg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="List registered models (default configs).")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    rows = []
    for name in list_models():
        cfg = model_cfg(name)
        params = sum(p.numel() for p in create_model(name).parameters())
        rows.append((name, cfg.encoder if params else "-", cfg.output_kind,
                     "stereo" if cfg.stereo_input else "mono", f"{params / 1e6:.2f} M"))
    header = ("model", "encoder", "output", "input", "parameters")
    if args.markdown:
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        for r in (header, *rows):
            print(f"{r[0]:<24}{r[1]:<18}{r[2]:<18}{r[3]:<8}{r[4]:>11}")


if __name__ == "__main__":
    main()
