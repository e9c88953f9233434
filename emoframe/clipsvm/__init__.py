"""Clip SVMs on per-frame CNN features (Knyazev et al., EmotiW 2017), one module per job:

    tta.py            test-time augmentation views of frames (flips, rotations, scales) and averaged features
    feature_files.py  the ``<split>.npz`` format: FeatureFile, load_features, write_features, SPLIT_NAMES
    extract.py        ``emoframe extract``: a backbone over every frame of a datamodule's splits, resumable
    aggregations.py   clip aggregations (mean, std, min, max, stat, stat_star, fft), registered in AGGREGATIONS
    pipeline.py       scikit-learn steps: ClipAggregator, rescale, RootSIFT, standardise (clip_feature_pipeline)
    svm.py            ClipSVM, SVMEnsemble, class-prior weights, save_model/load_model, build_svm_ensemble
    run.py            ``emoframe svm``: a checked SVM recipe fitted, reported, saved, and used to predict

Importing this package imports none of them: tta, feature_files, extract and aggregations need no
scikit-learn; pipeline, svm and run do.
"""
