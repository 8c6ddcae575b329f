import Testing
import Mesh
import NIOTestUtils
import NIOEmbedded
import InMemoryLogging
