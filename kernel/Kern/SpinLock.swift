// SpinLock.swift - a lock for short critical sections that never sleep.
//
// On one CPU, excluding everyone else means keeping interrupts (and so preemption) off.
// The lock also remembers that it is held, so taking it twice - a code path re-entering a
// data structure it is in the middle of changing - stops the kernel with the lock's name
// instead of corrupting the structure. Nothing may sleep while holding it.

struct SpinLock {
    let name: StaticString
    private(set) var isHeld = false
    private var interruptsWereEnabled = false

    init(_ name: StaticString) { self.name = name }

    mutating func lock() {
        let wasEnabled = CPU.interruptsEnabled
        CPU.disableInterrupts()
        if isHeld { panic("lock \(name) taken twice: a path re-entered what it holds") }
        isHeld = true
        interruptsWereEnabled = wasEnabled
    }

    mutating func unlock() {
        kassert(isHeld, "lock \(name) released while not held")
        isHeld = false
        if interruptsWereEnabled { CPU.enableInterrupts() }
    }
}
