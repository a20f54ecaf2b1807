"""Unit 08, RNNs and attention: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class BagOfEmbeddings(Settings):
    """The bag-of-embeddings model of notebook 02."""

    epochs: int = doc("epochs of the bag-of-embeddings classifier")
    lr: float = doc("AdamW learning rate of the bag-of-embeddings classifier")


@dataclass(frozen=True)
class Seq2Seq(Settings):
    """The encoder-decoder, with and without attention, of notebook 04 (number words to digits)."""

    max_digits: int = doc("longest number, in digits")
    train: int = doc("training pairs (a number in words and in digits), each number distinct")
    val: int = doc("validation pairs, no number shared with another split")
    test: int = doc("test pairs, no number shared with another split")
    embed: int = doc("numbers per word or digit embedding")
    hidden: int = doc("numbers in the GRU hidden state, per direction of the encoder and in the decoder")
    epochs: int = doc("epochs of each model, with and without attention")
    batch_size: int = doc("pairs per training batch")
    lr: float = doc("peak Adam learning rate (one-cycle schedule)")


@dataclass(frozen=True)
class Unit08(Settings):
    """The settings of unit 08."""

    split_seed: int = doc("seed of the split by movie into training, validation and test reviews")
    n_train: int | None = doc("training reviews the neural classifiers learn from (None: the whole training split)")
    min_freq: int = doc(
        "occurrences a token needs in the training reviews to get its own id "
        "(for the bag-of-words features: reviews containing it)"
    )
    bow_Cs: tuple[float, ...] = doc("inverse L2-penalty strengths of the logistic regression, tried on validation")
    embed_dim: int = doc("numbers per token embedding (bag of embeddings and recurrent classifiers)")
    hidden_size: int = doc("numbers in the recurrent cell's hidden state, per direction")
    bidirectional: bool = doc("whether the recurrent classifiers also read each review backwards")
    dropout: float = doc("dropout probability on the embeddings and on the final features")
    epochs: int = doc("epochs of each recurrent classifier (notebook 03)")
    batch_size: int = doc("reviews per batch")
    lr: float = doc("AdamW learning rate of the recurrent classifiers")
    weight_decay: float = doc("AdamW weight decay of the bag of embeddings and the recurrent classifiers")
    cells: tuple[str, ...] = doc("kinds of recurrent cell compared (each rnn, lstm or gru)")
    bag: BagOfEmbeddings = doc("The bag-of-embeddings model of notebook 02.")
    seq2seq: Seq2Seq = doc("The encoder-decoder, with and without attention, of notebook 04 (number words to digits).")


SMOKE = Unit08(
    split_seed=0,
    n_train=4000,
    min_freq=2,
    bow_Cs=(0.3, 1.0, 3.0, 10.0),
    embed_dim=32,
    hidden_size=32,
    bidirectional=False,
    dropout=0.3,
    epochs=4,
    batch_size=64,
    lr=0.01,
    weight_decay=0.01,
    cells=("rnn", "lstm", "gru"),
    bag=BagOfEmbeddings(epochs=6, lr=0.01),
    seq2seq=Seq2Seq(max_digits=6, train=3000, val=300, test=600, embed=32, hidden=64, epochs=4, batch_size=64, lr=0.01),
)

FULL = Unit08(
    split_seed=0,
    n_train=None,
    min_freq=2,
    bow_Cs=(0.3, 1.0, 3.0, 10.0),
    embed_dim=128,
    hidden_size=128,
    bidirectional=True,
    dropout=0.5,
    epochs=10,
    batch_size=64,
    lr=0.003,
    weight_decay=0.01,
    cells=("rnn", "lstm", "gru"),
    bag=BagOfEmbeddings(epochs=20, lr=0.01),
    seq2seq=Seq2Seq(
        max_digits=12, train=20000, val=1000, test=2000, embed=64, hidden=128, epochs=8, batch_size=128, lr=0.003
    ),
)
