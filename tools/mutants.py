"""make mutants: change one behaviour of fastai (or torch) in the kernel; its page must fail.

A page's asserts are only as good as the behaviour they would catch. Each mutant below patches
one behaviour a page explains (fastai's ``Optimizer.zero_grad`` dropping gradients instead of
zeroing them, ``BnFreeze`` doing nothing, ...) in a cell run right after the page's setup cell,
then executes the rest of the page. The page must fail; a mutant under which the page still
passes "survived": the page does not check what it says. This prints one line per mutant and
exits 1 when one survived.

A check, not a unit test (it executes pages once per mutant): ``.ci/run`` runs it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pagecache
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


@dataclass(frozen=True)
class Mutant:
    """One behaviour changed in the kernel, and the pages that explain it."""

    name: str
    pages: tuple[str, ...]
    patch: str  # Python run in the kernel after the setup cell
    needs_cuda: bool = False  # the behaviour only differs on a GPU: skipped without one


def _frozen_phase(pct_start: float, says: str, page: str) -> Mutant:
    """fastai's `Learner.fine_tune`, its frozen phase run with another `pct_start` than 0.99."""
    return Mutant(
        f"fine_tune's frozen phase {says}",
        (page,),
        f"""
        import fastai.callback.schedule as _schedule
        def fine_tune(self, epochs, base_lr=2e-3, freeze_epochs=1, lr_mult=100,
                      pct_start=0.3, div=5.0, **kwargs):
            self.freeze()
            self.fit_one_cycle(freeze_epochs, slice(base_lr), pct_start={pct_start}, **kwargs)
            base_lr /= 2
            self.unfreeze()
            self.fit_one_cycle(epochs, slice(base_lr/lr_mult, base_lr),
                               pct_start=pct_start, div=div, **kwargs)
        _schedule.Learner.fine_tune = fine_tune
        """,
    )


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "zero_grad drops gradients (torch's set_to_none) instead of zeroing them",
        ("freezing.ipynb",),
        """
        import fastai.optimizer as _opt
        def _zero_grad(self):
            for p, *_ in self.all_params(with_grad=True):
                p.grad = None
        _opt.Optimizer.zero_grad = _zero_grad
        """,
    ),
    Mutant(
        "freeze_to forgets opt.clear_state()",
        ("freezing.ipynb", "without-fastai.ipynb"),
        """
        import fastai.learner as _learner
        def _freeze_to(self, n):
            if self.opt is None: self.create_opt()
            self.opt.freeze_to(n)
        _learner.Learner.freeze_to = _freeze_to
        """,
    ),
    Mutant(
        "Optimizer.step skips parameters that do not require grad",
        ("freezing.ipynb",),
        """
        import fastai.optimizer as _opt
        def _step(self, closure=None):
            for p, pg, state, hyper in self.all_params(with_grad=True):
                if not p.requires_grad: continue
                for cb in self.cbs: state = _opt._update(state, cb(p, **{**state, **hyper}))
                self.state[p] = state
        _opt.Optimizer.step = _step
        """,
    ),
    Mutant(
        "torch's zero_grad keeps zeroed gradients (set_to_none=False)",
        ("freezing.ipynb",),
        """
        import torch as _torch
        _zg = _torch.optim.Optimizer.zero_grad
        _torch.optim.Optimizer.zero_grad = lambda self, set_to_none=False: _zg(self, set_to_none)
        """,
    ),
    Mutant(
        "train_bn also keeps biases trainable (force_train on norm_bias_params with_bias=True)",
        ("freezing.ipynb",),
        """
        import fastai.learner as _learner
        _create_opt = _learner.Learner.create_opt
        def create_opt(self):
            _create_opt(self)
            if self.train_bn:
                for p in self._bn_bias_state(True): p['force_train'] = True
        _learner.Learner.create_opt = create_opt
        """,
    ),
    Mutant(
        "wd_bn_bias ignored: no parameter exempt from weight decay",
        ("freezing.ipynb",),
        """
        import fastai.learner as _learner
        def create_opt(self):
            self.opt = self.opt_func(self.splitter(self.model), lr=self.lr)
            if self.train_bn:
                for p in self._bn_bias_state(False): p['force_train'] = True
        _learner.Learner.create_opt = create_opt
        """,
    ),
    Mutant(
        "_add_norm adds no Normalize",
        ("normalization.ipynb",),
        """
        import fastai.vision.learner as _vl
        _vl._add_norm = lambda *args, **kwargs: None
        """,
    ),
    Mutant(
        "_add_norm ignores n_in",
        ("normalization.ipynb",),
        """
        import fastai.vision.learner as _vl
        from fastai.data.transforms import Normalize as _N
        from fastcore.basics import risinstance as _ri
        def _add_norm(dls, meta, pretrained, n_in=3):
            if not pretrained: return
            stats = meta.get('stats')
            if stats is None: return
            if not dls.after_batch.fs.filter(_ri(_N)):
                dls.add_tfms([_N.from_stats(*stats)], 'after_batch')
        _vl._add_norm = _add_norm
        """,
    ),
    Mutant(
        "create_vision_model always calls arch(pretrained=...) (no 'weights' in model_meta)",
        ("normalization.ipynb",),
        """
        import fastai.vision.learner as _vl
        for _m in _vl.model_meta.values(): _m.pop('weights', None)
        """,
    ),
    Mutant(
        "create_vision_model honours weights= for architectures outside model_meta",
        ("normalization.ipynb",),
        """
        import fastai.vision.learner as _vl
        _cvm = _vl.create_vision_model
        def create_vision_model(arch, n_out, pretrained=True, weights=None, **kw):
            if weights is not None and arch not in _vl.model_meta:
                def built(pretrained=True):
                    return arch(weights=weights)
                return _cvm(built, n_out, pretrained=pretrained, **kw)
            return _cvm(arch, n_out, pretrained=pretrained, weights=weights, **kw)
        _vl.create_vision_model = create_vision_model
        """,
    ),
    Mutant(
        "_load_pretrained_weights averages the colour filters for n_in=1",
        ("normalization.ipynb",),
        """
        import fastai.vision.learner as _vl
        _lpw = _vl._load_pretrained_weights
        def _load(new, prev):
            if new.in_channels == 1: new.weight.data = prev.weight.data.mean(dim=1, keepdim=True)
            else: _lpw(new, prev)
        _vl._load_pretrained_weights = _load
        """,
    ),
    Mutant(
        "Normalize.from_stats keeps its statistics on the CPU (cuda=False)",
        ("normalization.ipynb",),
        """
        from fastai.data.transforms import Normalize as _N, broadcast_vec as _bv
        def from_stats(cls, mean, std, dim=1, ndim=4, cuda=True):
            return cls(*_bv(dim, ndim, mean, std, cuda=False))
        _N.from_stats = classmethod(from_stats)
        """,
        needs_cuda=True,
    ),
    Mutant(
        "BnFreeze does nothing",
        ("batchnorm.ipynb",),
        """
        import fastai.callback.training as _training
        _training.BnFreeze.before_train = lambda self: None
        """,
    ),
    Mutant(
        "set_bn_eval puts every BatchNorm in eval mode, trainable or not",
        ("batchnorm.ipynb",),
        """
        import fastai.callback.training as _training
        def set_bn_eval(m, use_eval=True):
            for l in m.modules():
                if isinstance(l, _training.bn_types): l.eval()
        _training.set_bn_eval = set_bn_eval
        """,
    ),
    Mutant(
        "num_features_model leaves the body in training mode (no .eval() in dummy_eval)",
        ("anatomy.ipynb", "batchnorm.ipynb"),
        """
        import fastai.callback.hook as _hook
        import torch as _torch
        def dummy_eval(m, size=(64, 64)):
            x = _hook.one_param(m).new(1, _hook.in_channels(m), *size)
            x = x.requires_grad_(False).uniform_(-1., 1.)
            with _torch.no_grad():
                return m(x)
        _hook.dummy_eval = dummy_eval
        """,
    ),
    Mutant(
        "TrainEvalCallback validates in training mode (no model.eval())",
        ("batchnorm.ipynb",),
        """
        from fastai.callback.core import TrainEvalCallback as _TE
        def before_validate(self): self.learn.training = False
        _TE.before_validate = before_validate
        """,
    ),
    Mutant(
        "the training DataLoader keeps its last incomplete batch (drop_last=False)",
        ("batchnorm.ipynb",),
        """
        import fastai.data.core as _dc
        _fd = _dc.DataLoaders.from_dsets.__func__
        def from_dsets(cls, *ds, **kw):
            kw.setdefault('drop_last', False)
            return _fd(cls, *ds, **kw)
        _dc.DataLoaders.from_dsets = classmethod(from_dsets)
        """,
    ),
    Mutant(
        "average_grad updates the first moment with lerp_, as torch's Adam does",
        ("without-fastai.ipynb",),
        """
        import fastai.optimizer as _opt
        import torch as _torch
        def average_grad(p, mom, dampening=False, grad_avg=None, **kwargs):
            if grad_avg is None: grad_avg = _torch.zeros_like(p.grad.data)
            if dampening: grad_avg.lerp_(p.grad.data, 1 - mom)
            else: grad_avg.mul_(mom).add_(p.grad.data)
            return {'grad_avg': grad_avg}
        average_grad.defaults = dict(mom=0.9)
        _opt.average_grad = average_grad
        """,
    ),
    Mutant(
        "adam_step divides sqrt(sqr_avg) by sqrt(debias2), as torch's Adam does",
        ("without-fastai.ipynb",),
        """
        import fastai.optimizer as _opt
        def adam_step(p, lr, mom, step, sqr_mom, grad_avg, sqr_avg, eps, **kwargs):
            debias1 = _opt.debias(mom, 1 - mom, step)
            debias2 = _opt.debias(sqr_mom, 1 - sqr_mom, step)
            denominator = sqr_avg.sqrt() / debias2 ** 0.5 + eps
            p.data.addcdiv_(grad_avg, denominator, value=-lr / debias1)
            return p
        adam_step._defaults = dict(eps=1e-5)
        _opt.adam_step = adam_step
        """,
    ),
    Mutant(
        "Learner.create_opt decays normalization layers and biases (wd_bn_bias ignored)",
        ("without-fastai.ipynb",),
        """
        import fastai.learner as _learner
        _create_opt = _learner.Learner.create_opt
        def create_opt(self):
            kept, self.wd_bn_bias = self.wd_bn_bias, True
            try: _create_opt(self)
            finally: self.wd_bn_bias = kept
        _learner.Learner.create_opt = create_opt
        """,
    ),
    _frozen_phase(0.25, "warms up for pct_start=0.25, not 0.99", "without-fastai.ipynb"),
    Mutant(
        "torch's Adam picks foreach (_multi_tensor_adam) on the CPU too",
        ("without-fastai.ipynb",),
        """
        import torch.optim.adam as _adam
        _adam._default_to_fused_or_foreach = (
            lambda params, differentiable, use_fused=False: (False, True))
        """,
    ),
    Mutant(
        "vision_learner ignores splitter=",
        ("beyond-resnet.ipynb",),
        """
        import functools
        import fastai.vision.learner as _vl
        _vision_learner = _vl.vision_learner
        @functools.wraps(_vision_learner)
        def vision_learner(*args, splitter=None, **kwargs):
            return _vision_learner(*args, **kwargs)
        _vl.vision_learner = vision_learner
        """,
    ),
    Mutant(
        "Learner refuses a splitter whose groups miss parameters",
        ("beyond-resnet.ipynb",),
        """
        import fastai.learner as _learner
        _create_opt = _learner.Learner.create_opt
        def create_opt(self):
            _create_opt(self)
            grouped = {id(p) for group in self.opt.param_lists for p in group}
            if grouped != {id(p) for p in self.model.parameters()}:
                raise ValueError("the splitter's groups miss parameters")
        _learner.Learner.create_opt = create_opt
        """,
    ),
    Mutant(
        "TimmBody pools every timm model (needs_pool always True)",
        ("beyond-resnet.ipynb",),
        """
        import fastai.vision.learner as _vl
        _init = _vl.TimmBody.__init__
        def __init__(self, model, pretrained=True, cut=None, n_in=3):
            _init(self, model, pretrained, cut, n_in)
            self.needs_pool = True
        _vl.TimmBody.__init__ = __init__
        """,
    ),
    Mutant(
        "_timm_norm normalizes with ImageNet's statistics, not timm's",
        ("beyond-resnet.ipynb",),
        """
        import fastai.vision.learner as _vl
        from fastai.data.transforms import Normalize as _Normalize
        def _timm_norm(dls, cfg, pretrained, n_in=3):
            if not pretrained: return
            if not dls.after_batch.fs.filter(_vl.risinstance(_Normalize)):
                dls.add_tfms([_Normalize.from_stats(*_vl.imagenet_stats)], 'after_batch')
        _vl._timm_norm = _timm_norm
        """,
    ),
    Mutant(
        "train_bn keeps only BatchNorm training (norm_types without LayerNorm)",
        ("beyond-resnet.ipynb",),
        """
        import fastai.torch_core as _tc
        import torch.nn as _nn
        _tc.norm_types = tuple(t for t in _tc.norm_types if t is not _nn.LayerNorm)
        """,
    ),
    Mutant(
        "fit_one_cycle's default pct_start is 0.3, not 0.25",
        ("discriminative-lrs.ipynb",),
        """
        import fastai.callback.schedule as _s
        _f = _s.Learner.fit_one_cycle
        def fit_one_cycle(self, n_epoch, lr_max=None, div=25., div_final=1e5,
                          pct_start=0.3, **kwargs):
            return _f(self, n_epoch, lr_max, div=div, div_final=div_final,
                      pct_start=pct_start, **kwargs)
        _s.Learner.fit_one_cycle = fit_one_cycle
        """,
    ),
    Mutant(
        "the one-cycle's halves are linear, not cosine",
        ("discriminative-lrs.ipynb",),
        """
        import fastai.callback.schedule as _s
        _s.combined_cos = lambda pct, start, middle, end: _s.combine_scheds(
            [pct, 1 - pct], [_s.SchedLin(start, middle), _s.SchedLin(middle, end)])
        """,
    ),
    Mutant(
        "LRFinder.before_fit saves no model",
        ("lr-find.ipynb",),
        """
        import fastai.callback.schedule as _s
        def before_fit(self):
            _s.ParamScheduler.before_fit(self)
            path = self.path/self.model_dir
            path.mkdir(parents=True, exist_ok=True)
            self.tmp_d = _s.tempfile.TemporaryDirectory(dir=path)
            self.tmp_p = _s.Path(self.tmp_d.name).stem
            self.best_loss = float('inf')
        _s.LRFinder.before_fit = before_fit
        """,
    ),
    Mutant(
        "lr_find restores the random state (loader and torch) after its run",
        ("lr-find.ipynb",),
        """
        import fastai.callback.schedule as _s
        from fastai.torch_core import get_random_states, set_random_states
        import functools
        _lr_find = _s.Learner.lr_find
        @functools.wraps(_lr_find)
        def lr_find(self, *args, **kwargs):
            states, rng = get_random_states(), self.dls.train.rng.getstate()
            try:
                return _lr_find(self, *args, **kwargs)
            finally:
                set_random_states(**states)
                self.dls.train.rng.setstate(rng)
        _s.Learner.lr_find = lr_find
        """,
    ),
    Mutant(
        "minimum's plotted point is its suggestion (lr_min / 10)",
        ("lr-find.ipynb",),
        """
        import fastai.callback.schedule as _s
        def minimum(lrs, losses, num_it):
            lr_min = lrs[losses.argmin()].item()
            return lr_min / 10, (lr_min / 10, losses.min())
        _s.minimum = minimum
        """,
    ),
    Mutant(
        "after unfreeze() lr_find gives the body a tenth of the head's rate",
        ("lr-find.ipynb",),
        """
        import fastai.callback.schedule as _s
        def before_batch(self):
            self.opt.set_hyper('lr', slice(self.scheds['lr'](self.train_iter / self.num_it)))
        _s.LRFinder.before_batch = before_batch
        """,
    ),
    Mutant(
        "to_fp16 adds no MixedPrecision callback",
        ("fine-tune.ipynb",),
        """
        import fastai.callback.fp16 as _fp16
        _fp16.Learner.to_fp16 = lambda self, **kwargs: self
        """,
    ),
    _frozen_phase(0.3, "anneals (pct_start=0.3)", "fine-tune.ipynb"),
    Mutant(
        "freeze() freezes BatchNorm too (train_bn ignored)",
        ("fine-tune.ipynb",),
        """
        import fastai.learner as _learner
        from torch import nn as _nn
        _freeze_to = _learner.Learner.freeze_to
        def freeze_to(self, n):
            _freeze_to(self, n)
            if n != 0:
                for m in self.model[0].modules():
                    if isinstance(m, _nn.BatchNorm2d):
                        for p in m.parameters():
                            p.requires_grad_(False)
        _learner.Learner.freeze_to = freeze_to
        """,
    ),
    Mutant(
        "lr_find runs 50 iterations instead of 100",
        ("lr-find.ipynb",),
        """
        import fastai.callback.schedule as _schedule
        _lr_find = _schedule.Learner.lr_find
        def lr_find(self, start_lr=1e-7, end_lr=10, num_it=100, stop_div=True, show_plot=True,
                    suggest_funcs=(_schedule.SuggestionMethod.Valley)):
            return _lr_find(self, start_lr, end_lr, 50, stop_div, show_plot, suggest_funcs)
        _schedule.Learner.lr_find = lr_find
        """,
    ),
    Mutant(
        "cnn_learner is vision_learner under another name, without a warning",
        ("anatomy.ipynb",),
        """
        import fastai.vision.learner as _vl
        _vl.cnn_learner = _vl.vision_learner
        """,
    ),
    Mutant(
        "_add_norm accepts plain torch DataLoaders (no dls.after_batch)",
        ("cheat-sheet.ipynb",),
        """
        import fastai.vision.learner as _vl
        _add_norm = _vl._add_norm
        def _lenient(dls, *args, **kwargs):
            if hasattr(dls, "after_batch"): return _add_norm(dls, *args, **kwargs)
        _vl._add_norm = _lenient
        """,
    ),
    Mutant(
        "_resnet_split ends group 0 after layer1 (m[0][:5]), not after layer2",
        ("fine-tune.ipynb",),
        """
        import fastai.vision.learner as _vl
        from fastai.torch_core import params as _params
        from fastcore.foundation import L as _L
        def _split(m): return _L(m[0][:5], m[0][5:], m[1:]).map(_params)
        for _meta in _vl.model_meta.values():
            if _meta.get("split") is _vl._resnet_split: _meta["split"] = _split
        _vl._resnet_meta["split"] = _split
        """,
    ),
    Mutant(
        "vision_learner honours cut= (passes it on to create_vision_model)",
        ("where-fastai-cuts.ipynb",),
        """
        import fastai.vision.learner as _vl
        _cvm, _vision_learner, _cut = _vl.create_vision_model, _vl.vision_learner, [None]
        def create_vision_model(*args, cut=None, **kwargs):
            return _cvm(*args, cut=_cut[0] if cut is None else cut, **kwargs)
        def vision_learner(*args, cut=None, **kwargs):
            _cut[0] = cut
            try: return _vision_learner(*args, **kwargs)
            finally: _cut[0] = None
        _vl.create_vision_model, _vl.vision_learner = create_vision_model, vision_learner
        """,
    ),
)


def _mutated(page: Path, patch: str) -> nbformat.NotebookNode:
    nb = nbformat.read(str(page), as_version=4)
    first = next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code")
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(textwrap.dedent(patch).strip()))
    return nb


def run(mutant: Mutant, page_name: str, timeout: int) -> tuple[bool, float, str]:
    """(the page failed, seconds, the failing cell's error line)."""
    page = pagecache.DOCS / page_name
    nb = _mutated(page, mutant.patch)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(page.parent)}})  # fmt: skip
    started = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as error:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
        lines = [ln for ln in plain.strip().splitlines() if ln.strip()]
        return True, time.perf_counter() - started, lines[-1][:200] if lines else ""
    return False, time.perf_counter() - started, ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only mutants whose name contains this")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args(argv)
    from transferlens.tutorial import resolve_asset_mode

    # As the page runs: one asset mode for all, one torch thread per kernel.
    os.environ["TRANSFERLENS_ASSETS"] = resolve_asset_mode()[0]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MPLCONFIGDIR", str(pagecache.BUILD / "matplotlib"))
    import torch

    mutants = [m for m in MUTANTS if args.k in m.name]
    skipped = [m.name for m in mutants if m.needs_cuda and not torch.cuda.is_available()]
    for name in skipped:
        print(f"skipped (needs a GPU): {name}")
    runs = [(m, p) for m in mutants if m.name not in skipped for p in m.pages]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda mp: run(*mp, args.timeout), runs))
    survived = 0
    for (mutant, page), (failed, seconds, error) in zip(runs, results, strict=True):
        survived += not failed
        verdict = "killed  " if failed else "SURVIVED"
        print(f"{verdict} {seconds:5.1f} s  {page:28s} {mutant.name}" + (f"\n    {error}" * failed))
    print(f"{len(runs) - survived} of {len(runs)} page runs failed under their mutant")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
