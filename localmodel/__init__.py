"""The embedded offline backend: local models behind the realtime protocol.

A model backend like the cloud ones: it imports the shared leaves in `protocol` and never aiortc
or the relay. `localmodel.server.serve_realtime` serves one connection; `localmodel.models`
names the models. Importing this package loads nothing, so recognizer children stay light.
"""
