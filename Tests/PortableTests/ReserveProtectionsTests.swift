// ReserveProtectionsTests.swift - reserves= values: on, off, lists, and what is refused.
import XCTest
@testable import KernelPortable

final class ReserveProtectionsTests: XCTestCase {
    func parse(_ text: String) -> ReserveProtections? { withByteString(text) { ReserveProtections.parse($0) } }

    func describe(_ protections: ReserveProtections) -> String {
        var sink = StringSink()
        protections.describe(into: &sink)
        return sink.text
    }

    func testOnAndOff() {
        XCTAssertEqual(parse("on"), .all)
        XCTAssertEqual(parse("off"), [])
    }

    func testListsKeepExactlyWhatTheyName() {
        XCTAssertEqual(parse("zones"), .zones)
        XCTAssertEqual(parse("pages,nowait"), [.pages, .nowait])
        XCTAssertEqual(parse("nowait,zones"), [.zones, .nowait])
        XCTAssertEqual(parse("zones,pages,nowait"), .all)
    }

    func testAnythingElseIsRefused() {
        for text in ["", "zone", "zones,", ",zones", "zones,zones", "on,zones", "ZONES", "all", "none"] {
            XCTAssertNil(parse(text), "reserves=\(text) must be refused")
        }
    }

    func testDescriptionNamesWhatIsOn() {
        XCTAssertEqual(describe(.all), "zones, pages, nowait")
        XCTAssertEqual(describe([.pages]), "pages")
        XCTAssertEqual(describe([.zones, .nowait]), "zones, nowait")
        XCTAssertEqual(describe([]), "none")
    }
}
