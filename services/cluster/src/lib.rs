//! The cluster stage ([`stage`]): the fan-in of the annotation route, density peaks over each
//! complete collection and the labelling rule, both from `sightline-clustering`.

pub mod stage;
