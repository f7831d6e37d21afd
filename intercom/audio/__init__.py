"""The sound card side of a unit: PortAudio and its devices, the microphone track and the speaker
sink, the processing between them (echo cancellation, noise suppression, gain), and the installer's
audio test. ``media`` keeps the RTP side; nothing here is imported by the hub.

Importing this package does not load PortAudio: import the module you need.
"""
