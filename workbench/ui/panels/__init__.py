"""The app's panels: each builds its widgets, forwards user actions to the session and
redraws itself from the session's state in ``refresh(what)``."""
