"""scikit-learn's estimator checks (legacy included) on both estimators, with no expected failures.

As scikit-learn's own tests of its MLP classes, the instances are made small through their
parameters only (max_iter); nothing is marked as an expected failure.
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

pytest.importorskip("sklearn")

import layerprop as lp  # noqa: E402

ESTIMATORS = [
    lp.MLPClassifier(max_iter=100, random_state=0),
    lp.MLPRegressor(max_iter=100, random_state=0),
]


@parametrize_with_checks(ESTIMATORS, legacy=True)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
