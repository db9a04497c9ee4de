"""The maximum-likelihood base: failed fits, the registry, the parameter accessor, new models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from rfmml.errors import ConvergenceError, DataError
from rfmml.models import (
    BetaGeoNBD,
    GammaGamma,
    MaximumLikelihoodModel,
    PurchaseModel,
    model_class,
    model_kinds,
    register_model,
)
from rfmml.models import _formulas as F


def _zero_spend_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"frequency": [1.0, 2.0, 3.0], "monetary_value": [10.0, 0.0, 5.0]},
        index=pd.Index([7, 8, 9], name="customer_id"),
    )


@pytest.mark.parametrize(
    ("make", "frame", "error"),
    [
        (lambda: BetaGeoNBD(max_iter=1), "cdnow", ConvergenceError),
        (lambda: BetaGeoNBD(penalizer=-1.0), "cdnow", ValueError),
        (BetaGeoNBD, "bad", DataError),
        (lambda: GammaGamma(max_iter=1), "cdnow", ConvergenceError),
        # zero spend of a repeat customer: the check used to run after n_excluded_ was set
        (GammaGamma, "zero_spend", DataError),
        (lambda: GammaGamma(zero_spend="drop"), "zero_spend", ValueError),
    ],
)
def test_a_failed_fit_leaves_the_estimator_unfitted(cdnow_summary, make, frame, error):
    frames = {
        "cdnow": cdnow_summary,
        "bad": cdnow_summary.assign(recency=cdnow_summary["T"] + 1.0),
        "zero_spend": _zero_spend_frame(),
    }
    model = make()
    with pytest.raises(error):
        model.fit(frames[frame])
    with pytest.raises(NotFittedError):
        check_is_fitted(model)
    assert not [k for k in vars(model) if k.endswith("_")]


def test_a_failed_refit_does_not_keep_the_previous_fit(cdnow_summary):
    model = GammaGamma().fit(cdnow_summary)
    with pytest.raises(DataError):
        model.fit(_zero_spend_frame())
    with pytest.raises(NotFittedError):
        model.get_fitted_params()


def test_registry_knows_the_shipped_models():
    assert {"BetaGeoNBD", "GammaGamma"} <= set(model_kinds())
    assert model_class("BetaGeoNBD") is BetaGeoNBD
    assert model_class("GammaGamma") is GammaGamma
    with pytest.raises(KeyError, match=r"unknown model kind 'Nope'; known kinds: .*'BetaGeoNBD'"):
        model_class("Nope")


def test_registry_refuses_a_second_class_for_a_kind_and_a_class_without_kind():
    class Impostor(GammaGamma):
        kind = "BetaGeoNBD"

    with pytest.raises(ValueError, match="model kind 'BetaGeoNBD' is already registered"):
        register_model(Impostor)

    class Nameless:
        pass

    with pytest.raises(ValueError, match="needs a non-empty class attribute kind"):
        register_model(Nameless)
    assert model_class("BetaGeoNBD") is BetaGeoNBD


def test_get_fitted_params_is_the_public_accessor(cdnow_bgnbd, cdnow_gamma_gamma):
    params = cdnow_bgnbd.get_fitted_params()
    assert list(params) == ["r", "alpha", "a", "b"]
    assert all(type(v) is float for v in params.values())
    assert params == cdnow_bgnbd.params_.to_dict()
    assert list(cdnow_gamma_gamma.get_fitted_params()) == ["p", "q", "v"]
    with pytest.raises(NotFittedError):
        BetaGeoNBD().get_fitted_params()


def test_a_model_must_define_its_likelihood_and_predictions():
    class Incomplete(PurchaseModel):
        kind = "Incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


class _NumericGammaGamma(GammaGamma):
    """Gamma-Gamma whose likelihood has no gradient: the base differentiates numerically."""

    kind = "NumericGammaGamma"

    def _prepare(self, rows, weights):
        return MaximumLikelihoodModel._prepare(self, rows, weights)

    def _log_likelihood(self, theta, data):
        ll = F.gamma_gamma_log_likelihood(
            data.rows["frequency"], data.rows["monetary_value"], *theta
        )
        return float(data.weights @ ll), None

    def _starting_points(self, data):
        return [np.array([1.0, 1.0, 10.0])]


def test_a_model_without_gradient_reaches_the_same_optimum(cdnow_summary, cdnow_gamma_gamma):
    model = _NumericGammaGamma().fit(cdnow_summary)
    np.testing.assert_allclose(model.params_, cdnow_gamma_gamma.params_, rtol=1e-5)
    assert model.log_likelihood_ == pytest.approx(cdnow_gamma_gamma.log_likelihood_, rel=1e-10)
    np.testing.assert_allclose(
        model.summary_["std_error"], cdnow_gamma_gamma.summary_["std_error"], rtol=1e-3
    )


@pytest.mark.parametrize("which", ["bgnbd", "gamma_gamma"])
def test_parity_check_fails_when_the_lifetimes_oracle_is_nudged(
    request, cdnow_summary, assert_lifetimes_parity, which
):
    """The oracle is not rfmml in disguise: a 0.1 % nudge of lifetimes' parameters is caught."""
    model = request.getfixturevalue(f"cdnow_{which}")
    oracle = request.getfixturevalue(f"lifetimes_{which}")
    assert_lifetimes_parity(model, oracle, cdnow_summary)
    names = list(model.params_.index)
    for name in names:
        nudged = request.getfixturevalue(f"lifetimes_{which}")  # this test's own copy
        original = nudged.params_.copy()
        nudged.params_ = original.copy()
        nudged.params_[name] = original[name] * 1.001
        with pytest.raises(AssertionError):
            assert_lifetimes_parity(model, nudged, cdnow_summary)
        nudged.params_ = original


def test_each_test_gets_its_own_lifetimes_oracle(
    lifetimes_bgnbd, _lifetimes_bgnbd_fitted, cdnow_bgnbd
):
    assert lifetimes_bgnbd is not _lifetimes_bgnbd_fitted
    lifetimes_bgnbd.params_ = cdnow_bgnbd.params_.copy()  # what formula comparisons do
    assert not _lifetimes_bgnbd_fitted.params_.equals(lifetimes_bgnbd.params_)


def test_the_model_modules_import_each_other_without_cycles():
    """Imports inside rfmml.models (and the codec), lazy ones included, form a DAG."""
    import ast
    from pathlib import Path

    import rfmml

    root = Path(rfmml.__file__).parent
    files = {f"rfmml.models.{p.stem}": p for p in (root / "models").glob("*.py")}
    files.pop("rfmml.models.__init__")
    files["rfmml._documents"] = root / "_documents.py"
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps = set()
        tree = ast.parse(path.read_text())
        for block in ast.walk(tree):  # imports for type checkers only do not count
            if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING":
                block.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                deps |= {t for t in targets if t in files and t != name}
        graph[name] = deps
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in graph[node]:
            assert state.get(dep) != 1, f"import cycle: {' -> '.join([*path, node, dep])}"
            if dep not in state:
                visit(dep, [*path, node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])
    assert "rfmml.models.persistence" in graph["rfmml.models._base"]
    assert graph["rfmml._documents"] == set()
