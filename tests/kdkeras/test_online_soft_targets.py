"""kdkeras.online_soft_targets keeps its name; its home is kdkeras.targets.online."""

import kdkeras
from kdkeras import online_soft_targets
from kdkeras import targets
from kdkeras.targets import online


def test_old_name_is_the_online_modules_function():
    function = online.online_soft_target_dataset
    assert online_soft_targets.online_soft_target_dataset is function
    assert kdkeras.online_soft_target_dataset is function
    assert targets.online_soft_target_dataset is function
