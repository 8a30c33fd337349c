"""What several commands share: the cohort progress line and comma-separated option values."""

from __future__ import annotations

from carkinetics.progress import Progress


class PatientProgress:
    """A ``progress(done, total)`` callback for one cohort: a progress line on stderr.

    The line (:class:`~carkinetics.progress.Progress`) counts from the moment this object is
    made, shows the patients simulated and the patients per second, and ends when ``done``
    reaches ``total``.

    Parameters
    ----------
    label : str
        Written first on the line (the scenario's name).
    """

    def __init__(self, label):
        self.line = Progress(1, label=label, unit="cohort")
        self.drawn = False

    def __call__(self, done, total):
        """``done`` of the cohort's ``total`` patients simulated."""
        self.line.total = total
        self.drawn = True
        self.line(done)
        if done >= total:
            self.line.point_done(done)
            self.close()

    def close(self):
        """End the line (if anything was drawn)."""
        if self.drawn:
            self.line.close()
            self.drawn = False


def comma_separated(text) -> list:
    """The items of a comma-separated option value, spaces removed, empty items dropped.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of str
    """
    return [item for item in text.replace(" ", "").split(",") if item]
