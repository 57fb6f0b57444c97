//! Docker over bollard. (Being written.)
