"""Save fitted segmenters as plain JSON and load them back (no pickle).

What is stored is what prediction needs: hyper-parameters, the score edges of
an :class:`RFMScorer`, the scheme of a :class:`RuleSegmenter` (as data), and
for a :class:`KMeansSegmenter` the scaler, the value-ordered centroids and the
cluster names. A loaded segmenter predicts exactly as the saved one did.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted

from rfmml._documents import check_document, decode_float, encode, envelope
from rfmml.errors import ConfigError, DataError
from rfmml.segments.kmeans import KMeansSegmenter
from rfmml.segments.rules import RuleSegmenter
from rfmml.segments.schemes import Scheme
from rfmml.segments.scoring import RFMScorer

__all__ = ["load_segmenter", "save_segmenter", "segmenter_from_dict", "segmenter_to_dict"]

FORMAT = "rfmml.segmenter"
FORMAT_VERSION = 2
#: format of version 1 documents (rfmml 0.1); the layout is otherwise the same
_FORMAT_V1 = "rfmml.segmenter/1"


def _num(x: float) -> float | str | None:
    """A float under the document codec's convention (inf as a string, NaN as null)."""
    return encode(float(x))


def _unnum(x: float | str | None) -> float:
    return decode_float(x)


def _from_version_1(doc: dict) -> dict | None:
    if doc.get("format") != _FORMAT_V1:
        return None
    return {**doc, "format": FORMAT, "format_version": 1}


def _plain(value: Any) -> Any:
    """A group value as a JSON-native value of the same kind (ints stay ints)."""
    value = value.item() if isinstance(value, np.generic) else value
    if not isinstance(value, str | int | float | bool):
        raise TypeError(
            f"group values must be strings or numbers to be saved, got {type(value).__name__}"
        )
    return value


def scheme_to_dict(scheme: Scheme) -> dict[str, Any]:
    """A scheme as the mapping :meth:`Scheme.from_dict` reads (TOML layout)."""
    rules = []
    for rule in scheme.rules:
        entry: dict[str, Any] = {"segment": rule.segment}
        for key, lo, hi in rule.ranges:
            entry[key] = lo if lo == hi else [lo, hi]
        rules.append(entry)
    out: dict[str, Any] = {
        "name": scheme.name,
        "description": scheme.description,
        "n_scores": scheme.n_scores,
        "segments": [
            {"name": name, "description": row["description"], "action": row["action"]}
            for name, row in scheme.segments.iterrows()
        ],
        "rules": rules,
    }
    if scheme.default is not None:
        out["default"] = scheme.default
    return out


def _scorer_to_dict(scorer: RFMScorer) -> dict[str, Any]:
    check_is_fitted(scorer)
    params = scorer.get_params()
    if params["thresholds"] is not None:
        params["thresholds"] = {k: [float(v) for v in vs] for k, vs in params["thresholds"].items()}
    edges = scorer.edges_
    return {
        "params": params,
        "edges": [[_num(v) for v in row] for row in edges.to_numpy()],
        "edge_index": [
            [_plain(v) for v in i] if isinstance(i, tuple) else _plain(i) for i in edges.index
        ],
        "groups": None if scorer.groups_ is None else [_plain(g) for g in scorer.groups_],
        "group_name": None if scorer.groups_ is None else scorer.groups_.name,
        "n_features_in": int(scorer.n_features_in_),
    }


def _scorer_from_dict(data: dict[str, Any]) -> RFMScorer:
    scorer = RFMScorer(**data["params"])
    edges = np.array([[_unnum(v) for v in row] for row in data["edges"]], dtype=float)
    columns = list(range(2, scorer.n_scores + 1))
    if data["groups"] is None:
        index = pd.Index(data["edge_index"], name="metric")
        scorer.groups_ = None
    else:
        index = pd.MultiIndex.from_tuples(
            [tuple(i) for i in data["edge_index"]], names=[data["group_name"], "metric"]
        )
        scorer.groups_ = pd.Index(data["groups"], name=data["group_name"])
    scorer.edges_ = pd.DataFrame(edges, index=index, columns=columns)
    scorer.n_features_in_ = data["n_features_in"]
    return scorer


def _rules_to_dict(seg: RuleSegmenter) -> dict[str, Any]:
    check_is_fitted(seg)
    return {"scheme": scheme_to_dict(seg.scheme_), "scorer": _scorer_to_dict(seg.scorer_)}


def _rules_from_dict(data: dict[str, Any]) -> RuleSegmenter:
    scheme = Scheme.from_dict(data["scheme"], source="saved segmenter")
    scorer = _scorer_from_dict(data["scorer"])
    seg = RuleSegmenter(scheme=scheme, scorer=RFMScorer(**data["scorer"]["params"]))
    seg.scheme_ = scheme
    seg.scorer_ = scorer
    seg.n_features_in_ = scorer.n_features_in_
    return seg


def _kmeans_to_dict(seg: KMeansSegmenter) -> dict[str, Any]:
    check_is_fitted(seg)
    params = seg.get_params(deep=False)  # nested scorer__* keys are not constructor arguments
    params["scheme"] = None  # stored below as data
    params["scorer"] = None
    params["features"] = list(params["features"])
    params["log_features"] = list(params["log_features"])
    params["k_range"] = list(params["k_range"])
    scale = seg.pipeline_.named_steps["scale"]
    km = seg.pipeline_.named_steps["kmeans"]
    return {
        "params": {k: v for k, v in params.items() if k != "random_state"}
        | {"random_state": params["random_state"] if isinstance(params["random_state"], int)
           else None},
        "scale_mean": scale.mean_.tolist(),
        "scale_scale": scale.scale_.tolist(),
        "n_samples_seen": int(np.asarray(scale.n_samples_seen_).max()),
        "centers": km.cluster_centers_.tolist(),
        "cluster_names": list(seg.cluster_names_),
        "cluster_centers": seg.cluster_centers_.to_dict(orient="list"),
        "silhouette_curve": {str(k): _num(v) for k, v in seg.silhouette_curve_.items()},
        "adjusted_rand_score": float(seg.adjusted_rand_score_),
        "rule_segmenter": _rules_to_dict(seg.rule_segmenter_),
        "n_features_in": int(seg.n_features_in_),
    }  # fmt: skip


def _kmeans_from_dict(data: dict[str, Any]) -> KMeansSegmenter:
    params = dict(data["params"])
    rules = _rules_from_dict(data["rule_segmenter"])
    params["scheme"] = rules.scheme_
    params["scorer"] = RFMScorer(**data["rule_segmenter"]["scorer"]["params"])
    params["k_range"] = tuple(params["k_range"])
    seg = KMeansSegmenter(**params)
    centers = np.asarray(data["centers"], dtype=float)
    k = len(centers)
    pipeline = seg._make_pipeline(k, 0)
    n_features = centers.shape[1]
    pipeline.named_steps["log"].fit(np.zeros((1, n_features)))
    scale = pipeline.named_steps["scale"]
    scale.mean_ = np.asarray(data["scale_mean"], dtype=float)
    scale.scale_ = np.asarray(data["scale_scale"], dtype=float)
    scale.var_ = scale.scale_**2
    scale.n_samples_seen_ = data["n_samples_seen"]
    scale.n_features_in_ = n_features
    # Fit on the centroids themselves (a properly fitted KMeans, no private state
    # set by hand), then put the saved centroids back bit for bit.
    km = KMeans(n_clusters=k, init=centers, n_init=1, max_iter=1).fit(centers)
    km.cluster_centers_ = centers.copy()
    pipeline.steps[-1] = ("kmeans", km)
    seg.pipeline_ = pipeline
    seg.n_clusters_ = k
    seg.cluster_names_ = list(data["cluster_names"])
    seg.cluster_centers_ = pd.DataFrame(
        data["cluster_centers"], index=pd.RangeIndex(k, name="cluster")
    )
    curve = {int(k_): _unnum(v) for k_, v in data["silhouette_curve"].items()}
    seg.silhouette_curve_ = pd.Series(curve, name="silhouette").rename_axis("k")
    seg.adjusted_rand_score_ = data["adjusted_rand_score"]
    seg.rule_segmenter_ = rules
    seg.labels_ = np.arange(k)  # training labels are not kept
    seg.n_features_in_ = data["n_features_in"]
    return seg


def segmenter_to_dict(segmenter: RuleSegmenter | KMeansSegmenter | RFMScorer) -> dict[str, Any]:
    """A fitted segmenter (or scorer) as a JSON-serialisable dictionary.

    Raises
    ------
    TypeError
        For other objects.
    sklearn.exceptions.NotFittedError
        If the segmenter is not fitted.
    """
    if isinstance(segmenter, KMeansSegmenter):
        kind, body = "kmeans", _kmeans_to_dict(segmenter)
    elif isinstance(segmenter, RuleSegmenter):
        kind, body = "rules", _rules_to_dict(segmenter)
    elif isinstance(segmenter, RFMScorer):
        kind, body = "scorer", _scorer_to_dict(segmenter)
    else:
        raise TypeError(f"cannot save a {type(segmenter).__name__}; expected a rfmml segmenter")
    return envelope(FORMAT, FORMAT_VERSION, {"kind": kind, **body})


def segmenter_from_dict(data: dict[str, Any]) -> RuleSegmenter | KMeansSegmenter | RFMScorer:
    """Rebuild a fitted segmenter from :func:`segmenter_to_dict` output.

    Raises
    ------
    ConfigError
        If the dictionary is not a saved rfmml segmenter.
    """
    try:
        _, data = check_document(
            data, FORMAT, FORMAT_VERSION, source="this dictionary", what="rfmml segmenter",
            hint="Save segmenters with rfmml.segments.persistence.save_segmenter.",
            legacy=_from_version_1,
        )  # fmt: skip
    except DataError as exc:
        raise ConfigError(f"not a saved rfmml segmenter: {exc}") from None
    builders: dict[str, Callable[[dict[str, Any]], RuleSegmenter | KMeansSegmenter | RFMScorer]]
    builders = {"kmeans": _kmeans_from_dict, "rules": _rules_from_dict, "scorer": _scorer_from_dict}
    if data.get("kind") not in builders:
        raise ConfigError(f"unknown segmenter kind {data.get('kind')!r}")
    return builders[data["kind"]](data)


def save_segmenter(segmenter: Any, path: str | Path) -> Path:
    """Write a fitted segmenter to a JSON file and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(segmenter_to_dict(segmenter), indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def load_segmenter(path: str | Path) -> RuleSegmenter | KMeansSegmenter | RFMScorer:
    """Read a segmenter written by :func:`save_segmenter` (format 1 files load too)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); expected a segmenter.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a saved rfmml segmenter (not a JSON object).")
    return segmenter_from_dict(data)
