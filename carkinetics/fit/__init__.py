"""Fitting: observation data, problems, likelihoods, optimisers, uncertainty, calibration."""
