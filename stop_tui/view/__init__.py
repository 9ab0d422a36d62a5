"""What the front ends show, as plain data: the layer between the engine and the two
front ends (the app in ``tui/``, the headless runner in ``cli/``). Nothing here
imports Textual or draws anything."""
