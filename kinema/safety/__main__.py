"""`python -m kinema.safety train`: regenerate the classifier head from the training prompt set."""

import argparse
import logging

from kinema.safety.classifier import EPOCHS, HEAD_PATH, TRAIN_PATH, TUNED_LAYERS, train_head


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m kinema.safety")
    parser.add_argument("command", choices=["train"])
    parser.add_argument("--data", default=str(TRAIN_PATH), help="labelled prompts, JSONL")
    parser.add_argument("--out", default=str(HEAD_PATH), help="where to write the head (safetensors)")
    parser.add_argument("--tuned-layers", type=int, default=TUNED_LAYERS,
                        help=f"top encoder layers fine-tuned with the head (default {TUNED_LAYERS}; 0: frozen encoder)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"passes when tuning layers (default {EPOCHS})")
    parser.add_argument("--report", help="write every training prompt's out-of-fold scores and refusals here "
                        "(JSONL), to find the misses and false alarms worth new training prompts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(train_head(args.data, args.out, tuned_layers=args.tuned_layers, epochs=args.epochs,
                     report=args.report))


if __name__ == "__main__":
    main()
