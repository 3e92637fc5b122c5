"""llmd4rec core: all math and data logic of the LLMD4Rec pipeline (stages/ only wires it to files)."""
