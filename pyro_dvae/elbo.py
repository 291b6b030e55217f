"""The training objective: the ELBO of the model and guide, estimated from Pyro traces.

``elbo_loss(model, guide, x, analytic_kl=False)`` equals Pyro's
``Trace_ELBO().differentiable_loss`` (or ``TraceMeanField_ELBO`` with ``analytic_kl=True``) for
guides whose sites are all reparameterised, as this guide's are (tested in tests/test_elbo.py).
It exists because those classes read the loss back to the host (``torch_item``, NaN warnings)
on every call, a device synchronisation per step on a GPU; here nothing leaves the device until
the trainer logs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyro
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer import JitTrace_ELBO
from pyro.poutine.util import prune_subsample_sites
from torch import Tensor
from torch.distributions import kl_divergence


def elbo_loss(model: Callable, guide: Callable, *args, analytic_kl: bool = False,
              site_weights: Mapping[str, float] | None = None, **kwargs) -> Tensor:
    """Negative ELBO (one sample of every latent), summed over the batch; differentiable.

    ``site_weights`` multiplies named latent sites' terms (log p - log q, or -KL): a weight below 1
    on "f" is the beta-VAE objective for the static code alone. With any weight other than 1 the
    result is no longer the negative ELBO, so held-out ELBOs are computed without weights.
    """
    weights = site_weights or {}
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
        *args, **kwargs
    )
    # Plates are recorded as sample sites too; like Trace_ELBO, score only the real ones (a guide
    # need not open every plate its model does).
    guide_trace, model_trace = prune_subsample_sites(guide_trace), prune_subsample_sites(model_trace)
    elbo = 0.0
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample":
            continue
        if site["is_observed"]:
            elbo = elbo + _log_prob_sum(site)
            continue
        guide_site = guide_trace.nodes[name]
        term = None
        if analytic_kl:
            try:
                term = -scale_and_mask(kl_divergence(guide_site["fn"], site["fn"]), guide_site["scale"],
                                       guide_site["mask"]).sum()
            except NotImplementedError:
                pass  # no closed form for this pair: fall back to the Monte Carlo term
        if term is None:
            term = _log_prob_sum(site) - _log_prob_sum(guide_site)
        elbo = elbo + (term * weights[name] if name in weights else term)
    return -elbo


def _log_prob_sum(site: dict) -> Tensor:
    log_p = site["fn"].log_prob(site["value"])
    return scale_and_mask(log_p, site["scale"], site["mask"]).sum()


def jit_elbo_loss(model) -> Callable:
    """Pyro's JitTrace_ELBO for a DVAE: ``loss(x)``; compiled on first call (``--elbo jit``).

    JitTrace_ELBO passes parameters to the compiled function through Pyro's parameter store, so
    the networks are registered there under a name unique to this model instance. It reads the
    loss back to the host each step like Trace_ELBO, and takes no per-step KL weight.
    """
    name = f"dvae-{id(model)}"
    elbo = JitTrace_ELBO(ignore_jit_warnings=True)

    def registered_model(x):
        pyro.module(name, model)
        return model.model(x)

    def registered_guide(x):
        pyro.module(name, model)
        return model.guide(x)

    return lambda x: elbo.differentiable_loss(registered_model, registered_guide, x)
