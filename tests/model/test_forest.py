"""The compiled forest scores exactly what scikit-learn's IsolationForest scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from detector.forest import CompiledForest, average_path_length


def test_average_path_length_by_hand():
    # c(4) = 2 (ln 3 + 0.5772156649) - 2 * 3 / 4 = 2 * 1.6758279535 - 1.5 = 1.851655907
    assert average_path_length(np.array([4]))[0] == pytest.approx(1.851655907)
    assert average_path_length(np.array([0, 1, 2])).tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("max_samples,max_features", [(64, 1.0), (512, 1.0), (256, 0.6)])
def test_same_scores_as_sklearn(max_samples, max_features):
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(2000, 5)), rng.normal(6, 1, size=(20, 5))])
    forest = IsolationForest(n_estimators=40, max_samples=max_samples, max_features=max_features,
                             random_state=1).fit(X)
    test = np.vstack([rng.normal(size=(300, 5)), rng.uniform(-50, 50, size=(50, 5)), X[:10]])
    np.testing.assert_allclose(CompiledForest.from_sklearn(forest).score(test), -forest.score_samples(test),
                               rtol=1e-12)


def test_empty_batch():
    forest = IsolationForest(n_estimators=3, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 2)))
    assert CompiledForest.from_sklearn(forest).score(np.empty((0, 2))).shape == (0,)
