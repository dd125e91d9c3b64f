"""haipvs.bgp: scale-out mode, N active directors behind the routers' ECMP.

haipvs owns no BGP code: BIRD 2 speaks BGP and BFD, and haipvs drives it through its
control socket. ``gate`` decides (pure) when a director may announce each VIP;
``snippet`` renders the BIRD configuration (pure); ``bird`` is the control-socket client
behind the ``RouteSpeaker`` port, and ``fake`` its strict stand-in for tests.
"""
