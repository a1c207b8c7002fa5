import numpy as np
import torch
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial import distance

from batchembed.embedders.distances import cosine, euclidean

finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@settings(max_examples=examples(200), deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda d: st.tuples(arrays(np.float32, (5, d), elements=finite), arrays(np.float32, (5, d), elements=finite))
    )
)
def test_distances_match_scipy_in_float64(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    got_e = euclidean(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    got_c = cosine(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    for k in range(len(a)):
        x, y = a[k].astype(np.float64), b[k].astype(np.float64)
        assert got_e[k] == np.float32(got_e[k])
        np.testing.assert_allclose(got_e[k], distance.euclidean(x, y), rtol=1e-5, atol=1e-4)
        if np.linalg.norm(x) < 1e-3 or np.linalg.norm(y) < 1e-3:
            continue  # direction undefined or ill-conditioned in float32
        np.testing.assert_allclose(got_c[k], distance.cosine(x, y), rtol=1e-4, atol=1e-5)


def test_identical_vectors_are_exactly_zero() -> None:
    v = torch.randn(10, 50)
    assert torch.equal(euclidean(v, v.clone()), torch.zeros(10))
    assert torch.equal(cosine(v, v.clone()), torch.zeros(10))


def test_cosine_of_zero_vector_is_nan_not_zero() -> None:
    a = torch.zeros(1, 4)
    b = torch.ones(1, 4)
    assert torch.isnan(cosine(a, b)).all()


def test_opposite_vectors_have_cosine_distance_two() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.allclose(cosine(a, -a), torch.tensor([2.0]))
