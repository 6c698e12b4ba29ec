"""`python -m kinema.safety train`: regenerate the classifier head from the training prompt set."""

import argparse
import logging

from kinema.safety.classifier import HEAD_PATH, TRAIN_PATH, train_head


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m kinema.safety")
    parser.add_argument("command", choices=["train"])
    parser.add_argument("--data", default=str(TRAIN_PATH), help="labelled prompts, JSONL")
    parser.add_argument("--out", default=str(HEAD_PATH), help="where to write the head (safetensors)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(train_head(args.data, args.out))


if __name__ == "__main__":
    main()
