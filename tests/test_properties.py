"""Laws that hold for any input, checked on many generated cases (hypothesis)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyro_dvae import posterior
from pyro_dvae.config import RunConfig, preset, read_config_file, to_toml
from pyro_dvae.data.base import FrameSets
from pyro_dvae.data.sprites import decode_identity, encode_identity
from pyro_dvae.models.dvae import DVAE

MODEL = DVAE(preset("tiny").model).eval()


class _Sized(FrameSets):
    """Frame sets of given sizes whose frame (i, j) is the constant image i * 1000 + j."""

    name, channels, native_size = "sized", 1, 4

    def __init__(self, sizes: list[int]):
        super().__init__()
        self.set_sizes = torch.tensor(sizes)

    def _gather(self, set_idx, frame_idx):
        value = (set_idx * 1000 + frame_idx).float()
        return value[..., None, None, None].expand(*value.shape, 1, 4, 4)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(3, 40), min_size=1, max_size=12), n=st.integers(2, 3),
       batch=st.integers(1, 16), seed=st.integers(0, 2**31 - 1))
def test_sampler_draws_distinct_frames_of_one_set(sizes, n, batch, seed):
    data = _Sized(sizes)
    x = data.sample(batch, n, torch.Generator().manual_seed(seed))[..., 0, 0, 0].long()
    sets, frames = x // 1000, x % 1000
    assert (sets == sets[:, :1]).all()  # every row comes from one set
    assert (frames < torch.tensor(sizes)[sets]).all()  # only frames that exist
    assert all(len(set(row.tolist())) == n for row in frames)  # distinct


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 5), frames=st.integers(3, 6), seed=st.integers(0, 2**31 - 1))
def test_swapping_f_twice_returns_the_original(batch, frames, seed):
    torch.manual_seed(seed)
    xa, xb = torch.rand(2, batch, frames, 3, 16, 16).unbind(0)
    gen = torch.Generator().manual_seed(seed)
    a, b = posterior.encode(MODEL, xa, gen), posterior.encode(MODEL, xb, gen)
    there_and_back = a.with_static(b.f).with_static(a.f)
    assert torch.equal(posterior.decode(MODEL, *there_and_back), posterior.decode(MODEL, *a))
    # A real swap changes the frames (different f), and keeps the dynamics exactly.
    swapped = a.with_static(b.f)
    assert torch.equal(swapped.z, a.z)
    assert not torch.equal(posterior.decode(MODEL, *swapped), posterior.decode(MODEL, *a))


@given(k=st.integers(0, 1295))
def test_identity_codes_round_trip(k):
    attrs = decode_identity(k)
    assert attrs.shape == (4,) and int(encode_identity(attrs)) == k
    assert ((attrs >= 0) & (attrs < 6)).all()


@settings(max_examples=25, deadline=None)
@given(f_dim=st.integers(1, 512), z_dim=st.integers(1, 16), frames=st.integers(2, 8),
       lr=st.floats(1e-6, 1.0, allow_nan=False), steps=st.integers(1, 10**6),
       source=st.one_of(st.sampled_from(["sprites", "squares", "moving-mnist"]), st.text(min_size=1)),
       options=st.dictionaries(st.sampled_from(["digits", "limit_identities", "crop", "extensions"]),
                               st.one_of(st.integers(1, 9), st.floats(allow_nan=False), st.text(),
                                         st.lists(st.text(), max_size=3)),
                               max_size=3))
def test_config_toml_round_trip(tmp_path_factory, f_dim, z_dim, frames, lr, steps, source, options):
    config = (preset("cpu", "sprites").override("model", f_dim=f_dim, z_dim=z_dim, frames=frames)
              .override("train", lr=lr, steps=steps).override("data", source=source, options=options))
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_text(to_toml(config))
    assert RunConfig.from_dict(read_config_file(path)) == config
