"""The appliance: a Raspberry Pi door or desk unit, its buttons, lights and door relay, and its settings."""
