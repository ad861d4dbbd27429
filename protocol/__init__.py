"""What both ends of the realtime protocol share: its events, its audio format, tone of voice.

Leaf modules: they import neither aiortc nor FastAPI, so the relay (`relay`) and the embedded
model backend (`localmodel`) can both use them.
"""
