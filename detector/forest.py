"""A fitted IsolationForest flattened into numpy arrays, scored for all trees at once.

scikit-learn scores tree by tree through joblib, which costs about 0.4 ms per tree per call: with
200 trees and one call per scoring tick that is 80 ms a tick whatever the batch size (measured with
cProfile on a replay). Here every tree is stacked into one node table and a batch walks all trees in
``max_depth`` vectorised steps. The scores are the same numbers as
``IsolationForest.score_samples`` (checked by ``tests/model/test_forest.py``), built only from the
fitted trees' public arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import IsolationForest


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the mean path length of an unsuccessful search in a binary search tree of n points.

    c(1) = 0, c(2) = 1, c(n) = 2 (ln(n - 1) + γ) - 2 (n - 1) / n (Liu et al., 2008).

    >>> average_path_length(np.array([1, 2, 3])).round(4).tolist()
    [0.0, 1.0, 1.2074]
    """
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Depth of every node of one tree (root 0), from its child arrays (-1 marks a leaf).

    >>> node_depths(np.array([1, -1, 3, -1, -1]), np.array([2, -1, 4, -1, -1])).tolist()
    [0, 1, 1, 2, 2]
    """
    depth = np.zeros(len(left), dtype=np.int64)
    for node in range(len(left)):  # sklearn numbers parents before children
        if left[node] >= 0:
            depth[left[node]] = depth[right[node]] = depth[node] + 1
    return depth


@dataclass(frozen=True)
class CompiledForest:
    """All trees' nodes in one table; ``roots[t]`` is tree t's first node."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf_value: np.ndarray  # edges from the root + c(samples in leaf): the path length h(x)
    roots: np.ndarray
    steps: int
    denominator: float

    @classmethod
    def from_sklearn(cls, forest: IsolationForest) -> CompiledForest:
        feats, thrs, lefts, rights, values, roots = [], [], [], [], [], []
        offset = 0
        for est, est_features in zip(forest.estimators_, forest.estimators_features_):
            t = est.tree_
            leaf = t.children_left < 0
            idx = np.arange(t.node_count)
            f = t.feature.astype(np.int64)
            if len(est_features) != forest.n_features_in_:  # trees fitted on a feature subset
                f = np.asarray(est_features)[np.maximum(f, 0)]
            feats.append(np.where(leaf, 0, f))
            thrs.append(np.where(leaf, np.inf, t.threshold))  # leaves point at themselves
            lefts.append(np.where(leaf, idx, t.children_left) + offset)
            rights.append(np.where(leaf, idx, t.children_right) + offset)
            values.append(node_depths(t.children_left, t.children_right)
                          + average_path_length(t.n_node_samples))
            roots.append(offset)
            offset += t.node_count
        steps = max(int(est.tree_.max_depth) for est in forest.estimators_)
        return cls(np.concatenate(feats), np.concatenate(thrs), np.concatenate(lefts), np.concatenate(rights),
                   np.concatenate(values), np.asarray(roots, dtype=np.int64), steps,
                   float(len(forest.estimators_) * average_path_length(np.array([forest.max_samples_]))[0]))

    def score(self, X: np.ndarray, chunk_cells: int = 1 << 20) -> np.ndarray:
        """IsolationForest's anomaly score 2^(-E[h(x)] / c(max_samples)), in (0, 1]; higher = more anomalous.

        Rows are walked in chunks of about ``chunk_cells`` (row, tree) pairs to bound memory.
        """
        # trees compare float32 copies of the inputs, as scikit-learn's do
        X = np.asarray(X, dtype=np.float32).astype(np.float64)
        rows_per_chunk = max(1, chunk_cells // len(self.roots))
        if len(X) > rows_per_chunk:
            return np.concatenate([self.score(X[i:i + rows_per_chunk], chunk_cells)
                                   for i in range(0, len(X), rows_per_chunk)])
        rows = np.arange(len(X))[:, None]
        nodes = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        for _ in range(self.steps):
            go_left = X[rows, self.feature[nodes]] <= self.threshold[nodes]
            nodes = np.where(go_left, self.left[nodes], self.right[nodes])
        depths = self.leaf_value[nodes].sum(axis=1)
        if self.denominator == 0:
            return np.ones(len(X))
        return 2.0 ** (-depths / self.denominator)
