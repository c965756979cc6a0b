"""Built-in specs for the studies of the source papers (``marginlab run <name> [--quick]``).

Full mode is "CPU minutes to an hour" scale on the bundled MNIST subset (5,000 training images); the paper's
scale (55,000 images, widths to 10,000, 1,000 epochs) is reached by editing the JSON (``marginlab run NAME
--dump > spec.json``) once the full MNIST training set is in the cache. Each spec carries its own ``quick``
overrides: the smoke version CI runs in well under a minute per study.

``missing-margin-cifar10`` is the exception: it needs the CIFAR-10 archive (not bundled; the runner says how
to get it before training anything) and a GPU for its full version (``train.device`` is ``"auto"``).

Deviations from the papers (and why); the paper-vs-ours table of each notebook
(:mod:`marginlab.experiments.paper`) repeats them with the sizes actually run:

* ``missing-margin`` (seed 000 §4.2, §5): the bundled 5,000-image MNIST subset instead of 55,000 images (no
  network here); widths 16-1,024 instead of 100-10,000 and at most 300 epochs for every set (the paper: 1,000
  for label corruption, 100 otherwise) to stay at CPU scale; as in §5 only correctly classified samples get
  margins (``skip_misclassified``).
* ``missing-margin-cifar10`` (seed 000 §4.3): 10,000 training images instead of 45,000, widths up to 64,
  300 epochs instead of 500 (single-GPU scale).
* ``normalized-margin`` (seed 001 §4, App. A): 1,000 training images (as the paper), but a 3-layer width-512
  bias-free MLP and 300 epochs of mini-batch SGD / Nero instead of the paper's longer full-batch training;
  inputs on the sphere; spectral complexity against the initial weights (App. A.1); correctly classified
  points only. The paper's Bartlett ``||X||/n`` correction is replaced by the per-sample ``sqrt(d)/||x||``
  of Defs. 3.1-3.2 (a constant factor for inputs on the sphere).
* ``min-vs-average-margin`` (seed 002 Fig. 1): the 0/1 images of the bundled subset instead of all of MNIST's.
* ``average-margin-regularizer`` (seed 002 §5, Table 1): lambda 0.1, beta 1e-3, tau 5 as the paper; a
  2-hidden-layer width-256 MLP on 5,000 images, 200 epochs; PGD ascends the logit margin (cross-entropy's
  gradient vanishes on margin-trained models), 20 steps.
* ``margin-losses`` (seeds 003 Table 1, 004 App. A.2): ODN r / theta / mu = 1.2 / 0.7 / 0.1 (seed 003's values
  without batch normalization; its MNIST values are not given); large-margin loss with l2 at the input,
  gamma 200 on 0-255 pixels (200/255 here), max aggregation, cross-entropy weight 1, eps 1e-6. A
  2-hidden-layer MLP with Adam for every loss instead of the papers' CNNs (ODN and the large-margin loss did
  not train with SGD at lr 0.05 here); 500-5,000 training images.
"""

from __future__ import annotations

__all__ = ["STUDIES"]

_SGD = {"optimizer": "sgd", "lr": 0.01, "optimizer_options": {"momentum": 0.9}, "batch_size": 64}

MISSING_MARGIN = {
    "name": "missing-margin",
    "paper": "seed 000: The missing margin (Theunissen, Mouton, Davel 2023), Figs. 1-5, 7",
    "description": "MNIST 1-hidden-layer ReLU MLP capacity sweep on clean, 20% label-corrupted and 20% "
    "Gaussian "
    "input-corrupted training sets; exact margins of training samples and maximum margins "
    "(nearest different-label training sample) before and after corruption.",
    "data": {"dataset": "mnist", "n_train": 5000, "n_val": 2000},
    "corruptions": [
        {"kind": "none"},
        {"kind": "label", "fraction": 0.2},
        {"kind": "gaussian", "fraction": 0.2},
    ],
    "model": {"family": "mlp", "depth": 1},
    "capacities": [16, 32, 64, 128, 256, 512, 1024],
    "seeds": [0, 1, 2],
    # seed 000 §4.2: SGD with momentum, batch 64, lr 0.01 x 0.99 every 5 epochs, trained to interpolation
    "train": {**_SGD, "epochs": 300, "lr_decay": 0.99, "lr_decay_every": 5, "target_train_acc": 1.0},
    # seed 000 §5 measures the margins of correctly classified training samples only
    "margins": {"method": "batched", "n_samples": 1000, "max_margin": True, "skip_misclassified": True},
    # smoke: the batched solver's refinement is capped (max_iter 10-20 changed mean margins by < 1e-4 here)
    "quick": {
        "data": {"n_train": 600, "n_val": 500},
        "capacities": [16, 256],
        "seeds": [0],
        "train": {"epochs": 20, "lr": 0.05},
        "margins": {"n_samples": 80, "options": {"max_iter": 10}},
    },
}

MISSING_MARGIN_CIFAR10 = {
    "name": "missing-margin-cifar10",
    "paper": "seed 000: The missing margin (Theunissen, Mouton, Davel 2023), §4.3 and the CIFAR10 panels of "
    "Figs. 1-4, 6, 7",
    "description": "CIFAR-10 CNN(k) capacity sweep (four ReLU conv layers with k, 2k, 4k, 8k channels, max "
    "and average pooling, a 400-unit fully connected layer) on clean, 10% label-corrupted and 10% Gaussian "
    "input-corrupted training sets; exact margins of training samples and maximum margins before and after "
    "corruption. Needs the CIFAR-10 python-version archive (marginlab.data.load_cifar10(download=True)).",
    # the paper: 45,000 training images, k in 10..64 (11 values), 500 epochs; this is a single-GPU scale
    "data": {"dataset": "cifar10", "n_train": 10000, "n_val": 2000},
    # seed 000 §4.3: "with 10% corruption (where applicable)" for the CIFAR10 models
    "corruptions": [
        {"kind": "none"},
        {"kind": "label", "fraction": 0.1},
        {"kind": "gaussian", "fraction": 0.1},
    ],
    "model": {"family": "cnn", "fc": 400},
    "capacities": [10, 16, 24, 32, 48, 64],
    "seeds": [0, 1, 2],
    # seed 000 §4.3: Adam, batch 256, lr 0.001 x 0.99 every 10 epochs, trained towards interpolation
    "train": {
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 256,
        "epochs": 300,
        "lr_decay": 0.99,
        "lr_decay_every": 10,
        "target_train_acc": 1.0,
        "device": "auto",
    },
    "margins": {"method": "batched", "n_samples": 1000, "max_margin": True, "skip_misclassified": True},
    "quick": {
        "data": {"n_train": 500, "n_val": 500},
        "capacities": [10, 20],
        "seeds": [0],
        "train": {"epochs": 20, "batch_size": 64},
        # the solver's refinement is not capped here: in 3,072 dimensions 10 passes often left barely trained
        # CNNs unverified (NaN margins), the default 30 did not
        "margins": {"n_samples": 60},
    },
}

NORMALIZED_MARGIN = {
    "name": "normalized-margin",
    "paper": "seed 001: Investigating generalization by controlling normalized margin (Farhang et al. 2022), "
    "Figs. 1-2, 5",
    "description": "True vs random labels on MNIST (inputs on the sphere of radius sqrt(d), bias-free ReLU "
    "MLP). "
    "'std' is plain training; 'frob-aX' is Recipe 1: Frobenius-norm projection of every layer "
    "plus the rescaled square loss targeting output margin X (the paper's Fig. 2 targets 100 on random "
    "labels).",
    "data": {"dataset": "mnist", "n_train": 1000, "n_val": 2000, "sphere": True},
    "corruptions": [{"kind": "none"}, {"kind": "random", "fraction": 1.0}],
    "model": {"family": "mlp", "depth": 3, "bias": False},
    "capacities": [512],
    "seeds": [0, 1],
    "train": {
        "optimizer": "sgd",
        "lr": 0.05,
        "optimizer_options": {"momentum": 0.9},
        "batch_size": 100,
        "epochs": 300,
        "target_train_acc": 1.0,
        "loss": "cross_entropy",
    },
    "variants": [
        {"name": "std"},
        {
            "name": "frob-a1",
            "loss": "rescaled_square",
            "loss_options": {"alpha": 1.0},
            "optimizer": "nero",
            "lr": 0.01,
            "constraints": [{"kind": "frobenius", "max_norm": 1.0}],
        },
        {
            "name": "frob-a4",
            "loss": "rescaled_square",
            "loss_options": {"alpha": 4.0},
            "optimizer": "nero",
            "lr": 0.01,
            "constraints": [{"kind": "frobenius", "max_norm": 1.0}],
        },
        {
            "name": "frob-a16",
            "loss": "rescaled_square",
            "loss_options": {"alpha": 16.0},
            "optimizer": "nero",
            "lr": 0.01,
            "constraints": [{"kind": "frobenius", "max_norm": 1.0}],
        },
        # seed 001 App. A, Fig. 2: random labels target label scale 100 (true labels 1), Frobenius control
        {
            "name": "frob-a100",
            "loss": "rescaled_square",
            "loss_options": {"alpha": 100.0},
            "optimizer": "nero",
            "lr": 0.01,
            "constraints": [{"kind": "frobenius", "max_norm": 1.0}],
        },
    ],
    # seed 001 Figs. 1-2: margins of correctly classified training points; the spectral complexity is measured
    # against the initial weights (App. A.1, the runner keeps a copy of the untrained model)
    "margins": {"method": "batched", "n_samples": 500, "max_margin": False, "normalized": True,
                "skip_misclassified": True},
    "quick": {
        "data": {"n_train": 300, "n_val": 500},
        "capacities": [128],
        "seeds": [0],
        "model": {"depth": 2},
        "variants": [
            {"name": "std"},
            {
                "name": "frob-a1",
                "loss": "rescaled_square",
                "loss_options": {"alpha": 1.0},
                "optimizer": "nero",
                "lr": 0.01,
                "constraints": [{"kind": "frobenius", "max_norm": 1.0}],
            },
            {
                "name": "frob-a100",
                "loss": "rescaled_square",
                "loss_options": {"alpha": 100.0},
                "optimizer": "nero",
                "lr": 0.01,
                "constraints": [{"kind": "frobenius", "max_norm": 1.0}],
                # the paper trains to 100% training accuracy; 40 epochs leave random labels at ~46% with this
                # target, 200 reach ~91% (a few seconds)
                "epochs": 200,
            },
        ],
        "train": {"epochs": 40},
        "margins": {"n_samples": 60, "options": {"max_iter": 10}},
    },
}

_TRACK = [0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000]
MIN_VS_AVERAGE = {
    "name": "min-vs-average-margin",
    "paper": "seed 002: Trade-off between minimum and average margin (Kaiwen Wu and Yaoliang Yu), Fig. 1",
    "description": "Binary logistic regression on MNIST 0 vs 1 trained by SGD (lr 0.01, Nesterov momentum "
    "0.9, "
    "batch 128, 1000 epochs): minimum and average l2 margins over epochs vs the linear SVM.",
    "data": {"dataset": "mnist", "classes": [0, 1], "n_val": 1000},
    "model": {"family": "linear"},
    "seeds": [0],
    "train": {
        "optimizer": "sgd",
        "lr": 0.01,
        "optimizer_options": {"momentum": 0.9, "nesterov": True},
        "batch_size": 128,
        "epochs": 1000,
    },
    # a linear model's boundary is a hyperplane: the first projection is exact, no refinement needed
    "margins": {
        "method": "batched",
        "n_samples": 500,
        "splits": ["train", "val"],
        "max_margin": False,
        "track_epochs": _TRACK,
        "svm_reference": True,
        "signed": True,
        "options": {"max_iter": 3},
    },
    "quick": {
        "data": {"n_val": 300},
        "train": {"epochs": 60, "lr": 0.1},
        "margins": {"n_samples": 200, "track_epochs": [0, 1, 2, 3, 5, 10, 20, 40, 60]},
    },
}

AVERAGE_MARGIN_REG = {
    "name": "average-margin-regularizer",
    "paper": "seed 002: Trade-off between minimum and average margin (Kaiwen Wu and Yaoliang Yu), Figs. 2/6, "
    "Table 1",
    "description": "MNIST MLP: standard training vs the average-margin regularizer (AMR); average margin "
    "over "
    "epochs and l2-PGD robust accuracy at several eps.",
    "data": {"dataset": "mnist", "n_train": 5000, "n_val": 2000},
    "model": {"family": "mlp", "depth": 2},
    "capacities": [256],
    "seeds": [0],
    "train": {
        "optimizer": "sgd",
        "lr": 0.01,
        "optimizer_options": {"momentum": 0.9, "nesterov": True},
        "batch_size": 128,
        "epochs": 200,
    },
    "variants": [
        {"name": "std"},
        # seed 002 §5 (MNIST MLP): lambda = 0.1, tau = 5, orthogonality weight beta = 1e-3
        {"name": "amr", "loss": "average_margin", "loss_options": {"lam": 0.1, "tau": 5.0, "beta": 1e-3}},
    ],
    "margins": {
        "method": "batched",
        "n_samples": 500,
        "splits": ["train", "val"],
        "max_margin": False,
        "track_epochs": [0, 1, 10, 20, 30, 40, 50, 80, 120, 160, 200],
        "track_method": "deepfool",
    },
    "robustness": {"attacks": ["pgd"], "eps": [0.0, 0.5, 1.0, 1.5, 2.0], "n_samples": 1000, "steps": 20},
    "quick": {
        "data": {"n_train": 500, "n_val": 300},
        "capacities": [32],
        "train": {"epochs": 8, "lr": 0.05},
        # DeepFool (an upper bound, within ~1% of the exact margin on MNIST MLPs) for curves during training
        "margins": {
            "n_samples": 60,
            "track_epochs": [0, 4, 8],
            "track_method": "deepfool",
            "options": {"max_iter": 10},
        },
        "robustness": {"n_samples": 150, "steps": 5, "eps": [0.0, 1.0, 2.0]},
    },
}

MARGIN_LOSSES = {
    "name": "margin-losses",
    "paper": "seeds 003 (ODN, Hinge, soft hinge; variance ratio, robustness) and 004 (large-margin loss, "
    "Elsayed et al.): small training sets and noisy labels",
    "description": "MNIST 2-hidden-layer MLP trained with cross-entropy, hinge, soft hinge, ODN and the "
    "large-margin loss on small training sets, clean and with 20% label noise: margin "
    "distributions, last-hidden-layer embeddings and FGSM / iterative FGSM / Gaussian-noise curves.",
    "data": {"dataset": "mnist", "n_val": 2000},
    "corruptions": [{"kind": "none"}, {"kind": "label", "fraction": 0.2}],
    "train_sizes": [500, 2000, 5000],
    "model": {"family": "mlp", "depth": 2},
    "capacities": [256],
    "seeds": [0],
    # Adam for every loss: with SGD (lr 0.05) ODN and the large-margin loss did not train at all here
    "train": {"optimizer": "adam", "lr": 0.001, "batch_size": 64, "epochs": 100},
    "variants": [
        {"name": "xent"},
        {"name": "hinge", "loss": "hinge"},
        {"name": "soft-hinge", "loss": "soft_hinge"},
        # seed 003 Table 1 (no batch normalization): r / theta / mu = 1.2 / 0.7 / 0.1
        {"name": "odn", "loss": "odn", "loss_options": {"r": 1.2, "theta": 0.7, "mu": 0.1}},
        # seed 004 App. A.2 (MNIST): l2 margin at the input layer, gamma 200 on 0-255 pixels (= 200/255 on
        # marginlab's [0, 1] pixels), aggregation max, cross-entropy added with weight 1, eps 1e-6
        {"name": "large-margin", "loss": "large_margin",
         "loss_options": {"gamma": 200 / 255, "p": 2, "layers": [0], "aggregation": "max", "ce_weight": 1.0,
                          "eps": 1e-6}},
    ],
    "margins": {"method": "batched", "n_samples": 500, "splits": ["train", "val"], "max_margin": False},
    "robustness": {
        "attacks": ["fgsm", "ifgsm", "noise"],
        "eps": [0.0, 0.05, 0.1, 0.15, 0.2, 0.3],
        "n_samples": 1000,
        "steps": 10,
    },
    "quick": {
        "train_sizes": [300],
        "corruptions": [{"kind": "label", "fraction": 0.2}],
        "data": {"n_val": 300},
        "capacities": [64],
        "train": {"epochs": 10},
        "margins": {"n_samples": 60, "splits": ["val"], "options": {"max_iter": 10}},
        "robustness": {"n_samples": 150, "steps": 5, "eps": [0.0, 0.1, 0.2]},
    },
}

STUDIES = {
    s["name"]: s
    for s in (
        MISSING_MARGIN,
        MISSING_MARGIN_CIFAR10,
        NORMALIZED_MARGIN,
        MIN_VS_AVERAGE,
        AVERAGE_MARGIN_REG,
        MARGIN_LOSSES,
    )
}
