"""The load harness behind `manage.py loadtest`: many visitors over real websockets, measured.

* `scenarios` plans where each visitor starts and where it walks: an opening crowd
  packed at the entrance, a rush through a choke point between two booths, groups
  browsing from booth to booth;
* `lean` is the harness's visitor connection: the visitor protocol as the SDK speaks it,
  read header-only, so that a thousand visitors cost the harness little; `rawsocket`
  hands its sockets to `reader`, one compiled thread that reads and counts every
  interest frame without Python (picows sockets, a callback a frame, are the other way);
* `drive` walks a joined visitor along its plan;
* `observe` watches from outside: the market summary socket, CPU of process trees;
* `runner` joins the visitors over the ramp-up, drives them, samples every second;
* `server` starts a `runmarket` of its own when no URL is given;
* `contributors` runs contributor agents (the SDK's, utility policy) in processes of
  their own beside the visitors, and reads the dispatcher's figures through one of them;
* `report` turns the samples into figures and verdicts (JSON), `html` into a page.
"""
