"""Train a small sequence-to-sequence model that writes a GitHub issue title from the issue body.

Runs as the single Worker of a TFJob (kubeflow.org/v1). Reads a CSV with columns `body` and
`issue_title` (the layout of the public "GitHub issues" dataset), trains a GRU encoder-decoder,
writes TensorBoard event logs, and exports a SavedModel whose `serving_default` signature takes
raw issue bodies (`body`, a string batch) and returns titles (`title`), so TF Serving needs no
client-side preprocessing: POST /v1/models/<name>:predict {"instances": ["<body>"]}.

Kept deliberately small (a few thousand issues, minutes on a CPU) so `kfinstall verify --demo`
can prove the path TFJob -> shared volume -> TF Serving end to end.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import tensorflow as tf

keras = tf.keras
START, END = "titlestart", "titleend"  # survive TextVectorization's default standardization


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="CSV with body and issue_title columns")
    parser.add_argument("--export", type=Path, required=True, help="model base path, e.g. /models/issue-summarization")
    parser.add_argument("--logs", type=Path, required=True, help="TensorBoard log dir, e.g. /logs/issue-summarization")
    parser.add_argument("--max-rows", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--body-len", type=int, default=70)
    parser.add_argument("--title-len", type=int, default=12)
    parser.add_argument("--units", type=int, default=128)
    return parser.parse_args(argv)


def read_issues(path: Path, limit: int) -> tuple[list[str], list[str]]:
    bodies, titles = [], []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            body, title = (row.get("body") or "").strip(), (row.get("issue_title") or "").strip()
            if body and title:
                bodies.append(body)
                titles.append(f"{START} {title} {END}")
            if len(bodies) >= limit:
                break
    if len(bodies) < 2:
        sys.exit(f"{path}: fewer than 2 usable rows (need columns body and issue_title)")
    return bodies, titles


class Seq2Seq(keras.Model):
    """GRU encoder-decoder; the decoder is teacher-forced in training and greedy when serving."""

    def __init__(self, body_vocab: int, title_vocab: int, units: int) -> None:
        super().__init__()
        self.enc_embed = keras.layers.Embedding(body_vocab, units, mask_zero=True)
        self.encoder = keras.layers.GRU(units, return_state=True)
        self.dec_embed = keras.layers.Embedding(title_vocab, units, mask_zero=True)
        self.decoder = keras.layers.GRU(units, return_sequences=True, return_state=True)
        # One logit per title token actually learned: the adapted vocabulary can be far below --vocab.
        self.project = keras.layers.Dense(title_vocab)

    def encode(self, body_tokens: tf.Tensor) -> tf.Tensor:
        _, state = self.encoder(self.enc_embed(body_tokens))
        return state

    def decode(self, tokens: tf.Tensor, state: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        sequence, state = self.decoder(self.dec_embed(tokens), initial_state=state)
        return self.project(sequence), state

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        body_tokens, title_in = inputs
        logits, _ = self.decode(title_in, self.encode(body_tokens))
        return logits


def build_vectorizers(args: argparse.Namespace, bodies: list[str], titles: list[str]):
    body_vec = keras.layers.TextVectorization(max_tokens=args.vocab, output_sequence_length=args.body_len)
    title_vec = keras.layers.TextVectorization(max_tokens=args.vocab, output_sequence_length=args.title_len + 1)
    body_vec.adapt(bodies)
    title_vec.adapt(titles)
    return body_vec, title_vec


def train(args: argparse.Namespace, model: Seq2Seq, body_vec, title_vec, bodies, titles) -> None:
    body_tokens = body_vec(tf.constant(bodies))
    title_tokens = title_vec(tf.constant(titles))
    title_in, title_out = title_tokens[:, :-1], title_tokens[:, 1:]
    weights = tf.cast(title_out != 0, tf.float32)  # padding does not count towards the loss
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit([body_tokens, title_in], title_out, sample_weight=weights, batch_size=64, epochs=args.epochs,
              validation_split=0.1, callbacks=tensorboard_callbacks(args.logs), verbose=2)


def tensorboard_callbacks(logs: Path) -> list:
    """Event logs for the platform's TensorBoard; skipped (with a note) where tensorboard is absent."""
    try:
        import tensorboard  # noqa: F401 - the TF images ship it; the slim tensorflow-cpu wheel does not
    except ImportError:
        print("tensorboard is not installed: training without event logs", file=sys.stderr)
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(logs / time.strftime("run-%Y%m%d-%H%M%S")))]


def serving_fn(model: Seq2Seq, body_vec, title_vec, max_len: int):
    vocab = tf.constant(title_vec.get_vocabulary())
    start_id = int(title_vec.get_vocabulary().index(START))
    end_id = int(title_vec.get_vocabulary().index(END))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="body")])
    def serve(body: tf.Tensor) -> dict[str, tf.Tensor]:
        state = model.encode(body_vec(body))
        token = tf.fill([tf.shape(body)[0], 1], tf.constant(start_id, tf.int64))
        picked = tf.TensorArray(tf.int64, size=max_len)
        for step in tf.range(max_len):
            logits, state = model.decode(token, state)
            next_id = tf.argmax(logits[:, -1, :], axis=-1, output_type=tf.int64)
            picked = picked.write(step, next_id)
            token = tf.expand_dims(next_id, 1)
        ids = tf.transpose(picked.stack())
        ended = tf.cumsum(tf.cast(ids == end_id, tf.int32), axis=1) > 0
        keep = tf.logical_and(tf.logical_not(ended), ids > 1)  # drop padding (0) and OOV (1)
        words = tf.where(keep, tf.gather(vocab, ids), "")
        title = tf.strings.regex_replace(tf.strings.reduce_join(words, axis=1, separator=" "), " +", " ")
        return {"title": tf.strings.strip(title)}

    return serve


def export(args: argparse.Namespace, model: Seq2Seq, body_vec, title_vec) -> Path:
    """Write <export>/<unix time>/: TF Serving loads the highest numbered version it finds.

    The SavedModel is written under a hidden, non-numeric name and renamed into place when complete
    (one rename(2) on the same volume), so neither TF Serving, which takes any directory named by a
    number as a version, nor tf-serving's model lister ever sees half an export.
    """
    version = str(int(time.time()))
    target, staging = args.export / version, args.export / f".{version}.partial"
    serve = serving_fn(model, body_vec, title_vec, args.title_len)
    if hasattr(keras, "export") and hasattr(keras.export, "ExportArchive"):  # Keras 3 (TF >= 2.16)
        archive = keras.export.ExportArchive()
        for tracked in (model, body_vec, title_vec):
            archive.track(tracked)
        archive.add_endpoint(name="serving_default", fn=serve)
        archive.write_out(str(staging))
    else:  # tf.keras 2: plain SavedModel of a module holding the layers
        module = tf.Module()
        module.model, module.body_vec, module.title_vec, module.serve = model, body_vec, title_vec, serve
        tf.saved_model.save(module, str(staging), signatures={"serving_default": serve})
    os.rename(staging, target)
    return target


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    bodies, titles = read_issues(args.data, args.max_rows)
    body_vec, title_vec = build_vectorizers(args, bodies, titles)
    model = Seq2Seq(body_vec.vocabulary_size(), title_vec.vocabulary_size(), args.units)
    train(args, model, body_vec, title_vec, bodies, titles)
    target = export(args, model, body_vec, title_vec)
    print(json.dumps({"exported": str(target), "rows": len(bodies), "worker": os.environ.get("TF_CONFIG", "")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
