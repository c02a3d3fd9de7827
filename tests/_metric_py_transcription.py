# A CPU transcription of google-deepmind/unlearning_evaluation's metric.py (the NeurIPS 2023
# unlearning competition's score), used only by the tests as the reference to agree with.
#
# Copyright 2024 DeepMind Technologies Limited. Licensed under the Apache License, Version 2.0
# (http://www.apache.org/licenses/LICENSE-2.0). Changes from the original: `.cuda()` calls removed
# (CPU tensors), `assert thr_eps` on a NumPy array replaced by a length check, the auxiliary
# per-threshold lists that only served plotting left out, layout reformatted.

import numpy as np
import torch

DELTA = 1e-05
EPSILON_CAP = 50
NUM_THRESHOLDS_PER_UNIT = 100


def _get_double_threshold_rates(pos_confs_, neg_confs_):
    pos_diff = pos_confs_.max() - pos_confs_.min()
    neg_diff = neg_confs_.max() - neg_confs_.min()
    smallest = neg_diff if pos_diff > neg_diff else pos_diff
    if pos_diff >= neg_diff:
        pos_confs_, neg_confs_ = neg_confs_, pos_confs_
    buffer = 2.0
    width = smallest
    min_ = (pos_confs_.min() + width - buffer).detach().cpu().numpy()
    max_ = (pos_confs_.max() + buffer).detach().cpu().numpy()
    num_right_thresholds = int(np.ceil((max_ - min_) * NUM_THRESHOLDS_PER_UNIT))
    right_thresholds_ = np.linspace(min_, max_, num=num_right_thresholds)
    width = width.detach().cpu().numpy()
    num_left_thresholds = int(np.ceil(2 * buffer * NUM_THRESHOLDS_PER_UNIT))
    thr_left_ = np.concatenate(
        [np.linspace(tr - width - buffer, tr - width + buffer, num=num_left_thresholds)
         for tr in right_thresholds_], axis=0)
    thr_right_ = np.tile(np.reshape(right_thresholds_, (-1, 1)), (1, num_left_thresholds)).reshape((-1))
    total_num_thresholds = len(thr_left_)
    num_models = pos_confs_.shape[0]
    thr_right_ = np.tile(np.expand_dims(thr_right_, 0), (num_models, 1))
    thr_left_ = np.tile(np.expand_dims(thr_left_, 0), (num_models, 1))
    pos_confs_ = torch.tile(pos_confs_[:, None], (1, total_num_thresholds))
    neg_confs_ = torch.tile(neg_confs_[:, None], (1, total_num_thresholds))
    thr_right_ = torch.from_numpy(thr_right_)
    thr_left_ = torch.from_numpy(thr_left_)

    def _is_pp(c):
        return torch.logical_and(torch.le(thr_left_, c), torch.le(c, thr_right_)).type(torch.float32)

    def _is_pn(c):
        return torch.logical_not(_is_pp(c)).type(torch.float32)

    tpr = torch.mean(_is_pp(pos_confs_), 0)
    fnr = torch.mean(_is_pn(pos_confs_), 0)
    fpr = torch.mean(_is_pp(neg_confs_), 0)
    tnr = torch.mean(_is_pn(neg_confs_), 0)
    return tpr, fnr, fpr, tnr


def _get_single_threshold_rates(pos_confs_, neg_confs_):
    all_confs = torch.cat([pos_confs_, neg_confs_])
    min_val = all_confs.min()
    max_val = all_confs.max()
    num_thresholds = int(torch.ceil((max_val - min_val) * NUM_THRESHOLDS_PER_UNIT))
    thresholds_ = torch.linspace(min_val, max_val, num_thresholds)
    num_models = pos_confs_.shape[0]
    thresholds_ = torch.tile(thresholds_[None, :], (num_models, 1))
    pos_confs_ = torch.tile(pos_confs_[:, None], (1, num_thresholds))
    neg_confs_ = torch.tile(neg_confs_[:, None], (1, num_thresholds))
    tpr = torch.mean((pos_confs_ >= thresholds_).type(torch.float32), 0)
    fpr = torch.mean((neg_confs_ >= thresholds_).type(torch.float32), 0)
    tnr = torch.mean((neg_confs_ < thresholds_).type(torch.float32), 0)
    fnr = torch.mean((pos_confs_ < thresholds_).type(torch.float32), 0)
    return tpr, fnr, fpr, tnr


def get_epsilons(pos_confs, neg_confs, delta=DELTA):
    epsilons = []
    for i in range(pos_confs.shape[1]):
        pos_confs_ = pos_confs[:, i].reshape(-1)
        neg_confs_ = neg_confs[:, i].reshape(-1)
        pos_diff = np.max(pos_confs_) - np.min(pos_confs_)
        neg_diff = np.max(neg_confs_) - np.min(neg_confs_)
        largest = pos_diff if pos_diff > neg_diff else neg_diff
        smallest = neg_diff if pos_diff > neg_diff else pos_diff
        with np.errstate(invalid="ignore", divide="ignore"):
            peaky = smallest / largest < 0.01
        if peaky:
            epsilons.append(EPSILON_CAP)
            continue
        pos_confs_ = torch.from_numpy(pos_confs_)
        neg_confs_ = torch.from_numpy(neg_confs_)
        tpr_d, fnr_d, fpr_d, tnr_d = _get_double_threshold_rates(pos_confs_, neg_confs_)
        tpr_s, fnr_s, fpr_s, tnr_s = _get_single_threshold_rates(pos_confs_, neg_confs_)
        tpr = torch.cat([tpr_d, tpr_s], 0)
        fnr = torch.cat([fnr_d, fnr_s], 0)
        fpr = torch.cat([fpr_d, fpr_s], 0)
        tnr = torch.cat([tnr_d, tnr_s], 0)
        total_num_thresholds = tpr.shape[0]
        thr_eps = torch.zeros(total_num_thresholds)
        fpr_fnr_both_zero = torch.eq(fpr + fnr, torch.zeros(total_num_thresholds))
        tpr_tnr_both_ones = torch.eq(tpr + tnr, 2 * torch.ones(total_num_thresholds))
        thr_eps = torch.where(fpr_fnr_both_zero * tpr_tnr_both_ones, torch.full(thr_eps.shape, np.inf), thr_eps)
        thr_eps_is_zero = torch.eq(thr_eps, torch.zeros_like(thr_eps))
        fpr_or_fnr_is_zero = torch.eq(fpr * fnr, torch.zeros_like(thr_eps))
        thr_eps = torch.where(thr_eps_is_zero * fpr_or_fnr_is_zero, torch.full(thr_eps.shape, np.nan), thr_eps)
        with np.errstate(invalid="ignore", divide="ignore"):
            cand = np.clip(np.nanmax([np.log(1 - delta - fpr.numpy()) - np.log(fnr.numpy()),
                                      np.log(1 - delta - fnr.numpy()) - np.log(fpr.numpy())], axis=0), 0, None)
        thr_eps = torch.where(torch.eq(thr_eps, torch.zeros_like(thr_eps)), torch.from_numpy(cand), thr_eps)
        keep_inds = [ind for ind, te in enumerate(thr_eps.numpy()) if not np.isnan(te)]
        thr_eps = thr_eps.numpy()[keep_inds]
        assert len(thr_eps), "Something went wrong, all thresholds gave nan epsilon..."
        epsilons.append(np.nanmax(thr_eps))
    return np.clip(epsilons, 0, EPSILON_CAP)


def compute_forget_score_from_confs(unlearned_confs, retrained_confs):
    _, forget_set_size = retrained_confs.shape
    retrain_means = np.median(retrained_confs, axis=0)
    unlearned_means = np.median(unlearned_confs, axis=0)
    retrain_is_positive = retrain_means > unlearned_means
    pos_confs = np.where(retrain_is_positive, retrained_confs, unlearned_confs)
    neg_confs = np.where(retrain_is_positive, unlearned_confs, retrained_confs)
    eps = get_epsilons(pos_confs, neg_confs, delta=DELTA)
    num_models = unlearned_confs.shape[0]
    max_epsilon = np.ceil(np.log(num_models - 1))
    start_idx = 0
    bucket_size = 0.5
    end_idx = start_idx + bucket_size
    points = 1
    bucket_points = {}
    while end_idx <= max_epsilon:
        bucket_points[start_idx] = points
        points /= 2
        start_idx += bucket_size
        end_idx = start_idx + bucket_size
    forget_score = 0
    for e in eps:
        for start_idx, points in bucket_points.items():
            if e < start_idx + bucket_size:
                forget_score += points
                break
    forget_score /= forget_set_size
    return forget_score, eps
