"""The load harness behind `manage.py loadtest`: many visitors through the SDK, measured.

* `scenarios` plans where each visitor starts and where it walks: an opening crowd
  packed at the entrance, a rush through a choke point between two booths, groups
  browsing from booth to booth;
* `drive` walks a joined visitor along its plan;
* `observe` watches from outside: the market summary socket, CPU of process trees;
* `runner` joins the visitors over the ramp-up, drives them, samples every second;
* `server` starts a `runmarket` of its own when no URL is given;
* `report` turns the samples into figures and verdicts (JSON), `html` into a page.
"""
