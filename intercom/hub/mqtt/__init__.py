"""The hub's MQTT bridge (issue 19): events on plain topics, and what Home Assistant discovers.

Off unless ``HubConfig.mqtt`` is set. :class:`~.bridge.MqttBridge` keeps the connection (back-off,
last will), :class:`~.events.MqttEvents` turns the call log's rows into event messages.
"""
